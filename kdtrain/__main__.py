"""`python -m kdtrain` (and `torchrun ... -m kdtrain distill ...`)."""

from kdtrain.cli import main

main()
