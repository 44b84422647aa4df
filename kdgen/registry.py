"""Generator registry: name -> Generator class. A new generator is one module that registers itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from kdgen.settings import dataclass_options

GENERATORS: dict[str, type[Generator]] = {}


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: add a generator under its `name`."""
    if cls.name in GENERATORS:
        raise ValueError(f"generator {cls.name!r} registered twice")
    GENERATORS[cls.name] = cls
    return cls


def get_generator(name: str) -> type[Generator]:
    import kdgen.generators  # noqa: F401  (registers the built-in generators)

    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose one of {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name]


class Generator:
    """One kind of surrogate image.

    Lifecycle, in each worker process: ``__init__(size, **params)`` -> ``open()`` -> ``render(...)``
    many times -> ``close()``. ``__init__`` must be cheap and picklable-free (it runs in the parent
    too, for validation); heavy per-process state (a GL context) belongs in ``open()``.
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""
    # options specific to this generator; their values arrive as keyword params. Declared once as a
    # dataclass of kdgen.settings knobs (`Options`), from which its flags (`options`) are generated.
    Options: ClassVar[type | None] = None
    options: ClassVar[list] = []
    # samples per render() call (one task for a worker); batching generators raise it.
    batch: ClassVar[int] = 64
    # the algorithm's version, part of a dataset's identity: bump it whenever the same seed and options
    # draw different images (tests/test_generators.py pins a shard per generator), so that resuming
    # or extending a dataset never mixes old and new images.
    version: ClassVar[int] = 1
    # zlib level of the PNG files of --format png (kdgen.writer.encode_pngs): part of the bytes, so a change
    # is a version bump. 6 is Pillow's default; 0 stores the pixels, for sources whose encoding would cost
    # more than their rendering.
    png_level: ClassVar[int] = 6

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("Options") is not None:
            cls.options = [dataclass_options(cls.Options)]

    def __init__(self, size: tuple[int, int], **params):
        self.width, self.height = size
        self.params = params
        self.counters: Counter = Counter()

    def describe(self) -> dict:
        """JSON-able parameters recorded in the manifest and compared on resume."""
        return dict(self.params)

    def open(self) -> None:
        """Per-process setup (called once in each worker before rendering)."""

    def close(self) -> None:
        """Release per-process resources."""

    # A generator overrides sample() (one image at a time) or render_rngs() (a batch computed
    # together, each image from its own stream); each defaults to the other.

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """One image (uint8, HxWx3 or HxW) and its JSON-able per-sample parameters."""
        return self.render_rngs([rng])[0]

    def render_rngs(self, rngs: Sequence[np.random.Generator]) -> list[tuple[np.ndarray, dict]]:
        """Images for a batch of per-sample random streams, in order. An image must depend on its
        own stream only, never on the rest of its batch."""
        return [self.sample(rng) for rng in rngs]

    def render(self, seeds: Sequence[np.random.SeedSequence]) -> list[tuple[np.ndarray, dict]]:
        """Images for a batch of per-sample seeds, in order. Override to batch work that needs the
        seeds themselves (e.g. a GL atlas); otherwise override sample() or render_rngs()."""
        return self.render_rngs([np.random.default_rng(s) for s in seeds])

    def take_counters(self) -> Counter:
        """Counters accumulated since the last call (rejected frames, failed programs...)."""
        out, self.counters = self.counters, Counter()
        return out

