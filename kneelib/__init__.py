"""kneelib: a reproduction of Thorneloe et al., ISMRM 2020 #1029.

Nine single-class 2D U-Nets segment femoral cartilage, tibial cartilage and meniscus
in 3D DESS knee MRI; the package measures how far apart their convolution weights are.
Its packages are layers (``lint-imports`` checks them), each importing only those below it:

- ``report``: the notebooks' shared cells, figures, the activation browser, the headless runner
  (``python -m kneelib reproduce``) and the HTML report;
- ``study``: the study itself: its nets per seed (N scratch and N(N-1) fine-tuned for N tissues, nine for
  the paper's three), the controls, the limited-data policy sweep, the recipe-robustness grid and the
  claim tests;
- ``compare``: comparing trained nets: weight distances and their tables, activation maps and their
  overlap, permutation alignment, CKA, the spread over seeds;
- ``nets``: one network: the U-Net, loss, metrics, training and evaluation, worker processes, Slurm;
- ``data``: the IWOAI reader, synthetic phantoms, the data manifest, the slice cache and dataset, and
  the data context of a profile;
- ``core``: profiles, paths, atomic writes, provenance, result tables and the training status line;
- ``names``: the tissues, their codes, net names and the paper's published numbers.
"""

import os

# OpenMP threads that spin while waiting make a busy 2-core machine several times slower
# (benchmarks/README.md); set before torch is imported, unless the user chose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
