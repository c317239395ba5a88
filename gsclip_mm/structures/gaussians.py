"""The Gaussian tensor layout shared by fitting, transforms and backbones.

One row per Gaussian, float32 ``[N, 14]``::

    xyz(3) | rgb(3, in [0, 1], SH degree 0) | opacity(1, in (0, 1)) |
    scale(3, world units, > 0) | quat(4, wxyz, unit norm)

Index with the slices below rather than with literal numbers.
"""
GS_XYZ = slice(0, 3)
GS_RGB = slice(3, 6)
GS_OPACITY = slice(6, 7)
GS_SCALE = slice(7, 10)
GS_QUAT = slice(10, 14)
GS_DIM = 14

# Named feature groups a backbone may take as input (``in_features``).
GS_FEATURES = dict(xyz=GS_XYZ, rgb=GS_RGB, opacity=GS_OPACITY, scale=GS_SCALE, rot=GS_QUAT)
