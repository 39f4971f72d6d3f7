"""Benchmarks: our library next to Hugging Face transformers, on the same machine, in one run.

Entry point: `python -m benchmarks.run` (add `--quick` for a run of a few minutes). See benchmarks/README.md.
"""
