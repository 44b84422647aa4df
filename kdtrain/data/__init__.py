"""Data in: shard and tar reading, real labelled datasets, the training stream, augmentation."""
