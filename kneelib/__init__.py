"""kneelib: a reproduction of Thorneloe et al., ISMRM 2020 #1029.

Nine single-class 2D U-Nets segment femoral cartilage, tibial cartilage and meniscus
in 3D DESS knee MRI; the package measures how far apart their convolution weights are.
One concept per module: ``data`` (IWOAI reader and slice dataset), ``phantoms``
(synthetic knees), ``unet``, ``train``, ``metrics``, ``distances``, ``activations``.
"""

__version__ = "0.1.0"
