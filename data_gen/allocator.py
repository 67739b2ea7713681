"""Keep freed memory in the process while generating.

Generation allocates and frees megabyte-sized temporaries every few examples. With
glibc's default thresholds each one comes fresh from the kernel and is faulted in page
by page, which on virtual machines costs as much as the FFTs. Raising the mmap and trim
thresholds lets malloc reuse those blocks; the defaults are restored afterwards (the
worker process may run other Ray tasks) and the retained memory is returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager
from typing import Iterator

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_TUNED = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 512 << 20, _M_TOP_PAD: 64 << 20}
_DEFAULTS = {_M_MMAP_THRESHOLD: 128 << 10, _M_TRIM_THRESHOLD: 128 << 10, _M_TOP_PAD: 128 << 10}


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _apply(settings: dict[int, int]) -> None:
    libc = _libc()
    if libc is not None:  # not glibc: nothing to tune
        for option, value in settings.items():
            libc.mallopt(option, value)


def tune() -> None:
    """Switch this process to the tuned thresholds (for single-purpose processes: benchmarks)."""
    _apply(_TUNED)


@contextmanager
def tuned() -> Iterator[None]:
    """Tuned thresholds inside the block; defaults and a malloc_trim afterwards."""
    _apply(_TUNED)
    try:
        yield
    finally:
        _apply(_DEFAULTS)
        libc = _libc()
        if libc is not None:
            libc.malloc_trim(0)
