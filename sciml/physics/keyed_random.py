"""Counter-based random numbers: every draw is a pure function of its key.

A key folds (seed, stream, split, index, attempt) into one 64-bit word; draw j of a key is
SplitMix64's output for state key + (j + 1) * golden. No generator state is carried
between examples, so an example's numbers do not depend on which batch, shard or worker
produced it, and the whole batch is drawn with a handful of vectorized uint64 operations.
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1

# Purposes keep the key spaces of unrelated draws apart.
PURPOSE_EXAMPLE = 1
PURPOSE_SPARSITY = 2


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer (a bijection of uint64), elementwise; wraps modulo 2**64."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _fold(key: np.ndarray, word: np.ndarray) -> np.ndarray:
    return _mix(key ^ _mix(np.asarray(word, dtype=np.uint64) + _GOLDEN))


def stream_id(name: str) -> int:
    """A 64-bit stream number for a dataset family (e.g. a system name)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def keys(seed: int, stream: int, purpose: int, split: int, counters: np.ndarray,
         attempts: np.ndarray | int = 0) -> np.ndarray:
    """One uint64 key per counter (an example index, or a block number)."""
    head = np.array([seed & _MASK64], dtype=np.uint64)
    for word in (stream & _MASK64, purpose, split):
        head = _fold(head, np.array([word], dtype=np.uint64))
    out = _fold(head, np.asarray(counters, dtype=np.int64).astype(np.uint64))
    return _fold(out, np.broadcast_to(np.asarray(attempts, dtype=np.int64), out.shape).astype(np.uint64))


def uniforms(key: np.ndarray, first: int, count: int) -> np.ndarray:
    """Draws first .. first+count-1 of each key as float64 in [0, 1), shape (len(key), count)."""
    draws = np.arange(first + 1, first + count + 1, dtype=np.uint64) * _GOLDEN
    bits = _mix(key[:, None] + draws[None, :]) >> np.uint64(11)
    return bits.astype(np.float64) * (1.0 / (1 << 53))
