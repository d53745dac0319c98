"""``python -m kneelib reproduce --profile demo``: see kneelib.report.runner."""

import sys

from kneelib.report.runner import main

if __name__ == "__main__":
    sys.exit(main())
