"""Randomness enters only through a seed that becomes :class:`numpy.random.SeedSequence` children.

A task's stream is keyed by the task itself (e.g. window, model, imputation), never by the
order in which workers pick tasks up, so results are bit-identical on any backend and any
number of workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

SeedLike = int | np.random.SeedSequence | None


def root_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """The root :class:`~numpy.random.SeedSequence` of an analysis.

    ``None`` draws fresh OS entropy; the entropy actually used is ``seq.entropy`` and is
    reported in results so a run can be repeated.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            from .errors import ConfigError

            raise ConfigError(f"seed must be a non-negative integer or None; got {seed!r}")
        return np.random.SeedSequence(int(seed))
    return np.random.SeedSequence()


def _key_word(part: int | str) -> int:
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool) and part >= 0:
        return int(part)
    digest = hashlib.sha256(str(part).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def child_sequence(seed: SeedLike, key: Sequence[int | str]) -> np.random.SeedSequence:
    """The child stream of ``seed`` for the task named by ``key`` (ints or strings).

    Equivalent to spawning with an explicit ``spawn_key``: independent of spawn order.
    """
    root = root_sequence(seed)
    words = tuple(_key_word(part) for part in key)
    return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + words,
                                  pool_size=root.pool_size)


def generator(seed: SeedLike, key: Sequence[int | str] = ()) -> np.random.Generator:
    """A PCG64 generator for the task ``key`` of ``seed``."""
    return np.random.Generator(np.random.PCG64(child_sequence(seed, key)))
