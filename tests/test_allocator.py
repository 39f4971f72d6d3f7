"""bert_read_step_to_step.allocator: after keep_freed_memory(), glibc serves a step-sized block (24 MiB, the size of
MiniLM's [32, 12, 128, 128] fp32 attention probabilities) from its heap, where a freed block is reused, instead
of a fresh mmap that page-faults on every use. Checked in a fresh process each, since the setting is process-wide."""
import subprocess
import sys

import pytest

from _support import REPO_ROOT
from bert_read_step_to_step.allocator import glibc

# Where malloc put a 24 MiB block: "heap" below the program break (brk), or "mmap" elsewhere.
PROBE = """
import ctypes, sys
from bert_read_step_to_step.allocator import glibc, keep_freed_memory
if sys.argv[1] == "keep":
    print(keep_freed_memory(), file=sys.stderr)
libc = glibc()
libc.malloc.restype = libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_long]
block = libc.malloc(24 << 20)
print("heap" if block < libc.sbrk(0) else "mmap")
"""


def where_malloc_puts_a_big_block(mode):
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip(), done.stderr.strip()


@pytest.mark.skipif(glibc() is None, reason="mallopt is glibc's; elsewhere keep_freed_memory leaves malloc alone")
def test_keep_freed_memory_moves_step_sized_blocks_from_mmap_to_the_reusable_heap():
    assert where_malloc_puts_a_big_block("default")[0] == "mmap"
    placed, said = where_malloc_puts_a_big_block("keep")
    assert placed == "heap"
    assert said.startswith("allocator: glibc keeps freed blocks up to 32 MiB")
