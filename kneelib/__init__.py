"""kneelib: a reproduction of Thorneloe et al., ISMRM 2020 #1029.

Nine single-class 2D U-Nets segment femoral cartilage, tibial cartilage and meniscus
in 3D DESS knee MRI; the package measures how far apart their convolution weights are.
One concept per module: ``data`` (IWOAI reader and slice dataset), ``phantoms``
(synthetic knees), ``unet``, ``train``, ``metrics``, ``distances``, ``activations``.
"""

import os

# OpenMP threads that spin while waiting make a busy 2-core machine several times slower
# (benchmarks/README.md); set before torch is imported, unless the user chose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
