"""kdgen: surrogate image datasets for knowledge distillation, written as WebDataset shards."""

__version__ = "0.1.0"
