# Two commands do all set-up on a fresh machine with Python 3 and pip:
#   make reproduce   creates .venv, installs the pinned dependencies, runs notebooks 01-07 (demo profile)
#   make test        same set-up, then the test suite (tiny profile)
#   make robustness  same set-up, then 08_robustness (do the claims survive the training recipe?)
#   make validate    same set-up, then 09_relatedness (does the distance order tasks of known relatedness?)
#   make smoke-paper same set-up, then notebooks 01-07 at the paper's shapes (paper_smoke, ~30 min on 2 cores)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= demo
STAMP  := $(VENV)/.installed

.PHONY: setup reproduce robustness validate smoke-paper test lint sync-notebooks chromium clean-outputs lab

setup: $(STAMP) chromium

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (kneelib)" >/dev/null
	touch $(STAMP)

# Static figure export (kaleido) drives a system Chromium; Debian's package is installed
# when missing and we are root. Without it, figures are still written as HTML.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing Debian chromium for static figure export"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	    else echo "warning: no chromium found; PNG export will be skipped (install chromium)"; fi; }

reproduce: setup
	$(PY) -m kneelib reproduce --profile $(PROFILE)

# 08_robustness: the nine nets retrained under a grid of recipes around the demo's (about an hour on 2 cores)
robustness: setup
	$(PY) -m kneelib reproduce --profile robustness --only 08

# 09_relatedness: a ladder of fine-tuning tasks of known relatedness, and whether each measure orders it
# (PROFILE=demo by default: 15 fine-tuned nets and 3 lateral-tibial scratch nets on top of the study's)
validate: setup
	$(PY) -m kneelib reproduce --profile $(PROFILE) --only 09

# The paper's shapes (34.6 M-parameter nets, 384 x 384 slices, 1024-channel controls) with few subjects,
# slices and steps: proves the full-size code path on a CPU (docs/measurements.md, "The paper's shapes on a CPU").
smoke-paper: setup
	$(PY) -m kneelib reproduce --profile paper_smoke

test: lint
	$(PY) -m pytest

# ruff, then the import layers and the no-cycles contract (pyproject.toml, [tool.importlinter])
lint: setup
	$(PY) -m ruff check kneelib tests benchmarks notebooks
	$(VENV)/bin/lint-imports

# After editing a notebook's py:percent twin (notebooks/NN_name.py), bring its .ipynb up to date
# (or the other way round: jupytext takes the newer file of each pair as the source).
sync-notebooks: setup
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean-outputs:
	rm -rf outputs/*/
