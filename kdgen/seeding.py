"""Per-sample seeding: every sample's randomness comes from (dataset seed, global index) alone."""

from __future__ import annotations

import numpy as np


def sample_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed sequence of sample `index` of a dataset made with `seed` (independent of workers, shard size)."""
    return np.random.SeedSequence([int(seed), int(index)])


def sample_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(sample_seed(seed, index))


def index_of(seq: np.random.SeedSequence) -> int:
    """The global sample index a per-sample seed sequence was made for (sources indexed by sample)."""
    return int(seq.entropy[1])
