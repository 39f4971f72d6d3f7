"""python -m bert_read_step_to_step.reinit_sweep: the re-init sweep's entry point.

The sweep itself lives in bert_read_step_to_step/sweep/ (its __init__.py lists the parts; main.py's docstring
says what the sweep does and writes). This file keeps the command, and the names other code imports from it
(benchmarks/sweep.py, tests/test_precision.py, tests/test_readme.py), where they always were.
"""
from bert_read_step_to_step.sweep.main import (Setting, SweepError, check_extra_args, main, parse_args, run_argv,
                                               summarize, sweep_config)
from transformers.file_utils import run_entry_point

__all__ = ["Setting", "SweepError", "check_extra_args", "main", "parse_args", "run_argv", "summarize",
           "sweep_config"]

if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.reinit_sweep")
