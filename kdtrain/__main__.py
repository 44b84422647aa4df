"""`python -m kdtrain` (and `torchrun ... -m kdtrain distill ...`)."""

from kdtrain.cli.main import main

main()
