"""How the C allocator hands big tensors back: keep freed memory for the next step instead of returning it.

In:  nothing (call `keep_freed_memory()` once, at start-up, before training).
Out: a one-line description of what was set, for the log.

Why. A training step allocates and frees the same large tensors every time (the [B, N, L, L] attention
probabilities and their dropout masks, the [B, L, I] feed-forward activations). glibc's malloc serves a block
above its mmap threshold with a fresh `mmap` and returns it with `munmap` when torch frees it, so the next step
touches brand-new pages and takes a minor page fault for every 4 KiB of them. With the threshold raised to
glibc's maximum (32 MiB on 64-bit Linux) and trimming of the heap's top off, freed blocks stay in the heap and
the next step reuses them. benchmarks/README.md has the measurement (fewer page faults, faster steps). The
setting changes no value the model computes, only where its memory comes from.

    python -m bert_read_step_to_step.allocator     # prints what it would set here
"""
import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024  # return the heap's free top to the system only above 1 GiB


def glibc():
    """The C library as a ctypes handle when it is glibc (it has mallopt), else None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory():
    """Raise glibc's mmap threshold and trim threshold (see the module docstring); a line saying what was done."""
    libc = glibc()
    if libc is None:
        return f"allocator: left as it is ({sys.platform}, not glibc)"
    # mallopt returns 1 on success, 0 when it refuses the value.
    if libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) != 1 or libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "allocator: glibc refused mallopt; left as it is"
    return (f"allocator: glibc keeps freed blocks up to {MMAP_THRESHOLD_MAX >> 20} MiB for reuse "
            "(fewer page faults per training step)")


if __name__ == "__main__":
    print(keep_freed_memory())
