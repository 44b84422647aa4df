"""kdtrain: teachers, streaming loaders, distillation, the boundary attack and dataset scoring."""

__version__ = "0.1.0"
