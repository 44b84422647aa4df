"""Training: the distillation config, the trainer, evaluation, logs and checkpoints."""
