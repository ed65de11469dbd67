"""Keyed randomness: every random number of the simulated market comes from a generator keyed by
what it is for, so it depends on nothing but (seed, venue, symbol, time) — no global state."""

from __future__ import annotations

import hashlib

import numpy as np


def _key(*parts: object) -> int:
    """A 128-bit Philox key from the parts (blake2b: stable across processes, unlike hash())."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=_key(*parts)))


def _unit(*parts: object) -> float:
    """A uniform [0, 1) number that depends only on the parts (for per-symbol constants)."""
    return _key(*parts) / 2.0**128


def _normal(*parts: object) -> float:
    return float(_rng(*parts).standard_normal())


def _frozen(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def student_t(rng: np.random.Generator, df: float, size) -> np.ndarray:
    """Student-t draws scaled to unit variance (fat tails without changing the sigma they are scaled by)."""
    return rng.standard_t(df, size) * np.sqrt((df - 2.0) / df)
