"""The re-init sweep's runs: each (setting, seed) trained and scored by run_classifier.py in its own process.

In:  the plan (plan.py: settings, seeds, each run's argv), the runs' data folder (data.py) and
     the results document (records.py).
Out: one record per run appended to the document and saved after each run: status "finished" with the dev
     metrics and score, or "diverged" (run_classifier exited 3: a non-finite loss or gradient) with no score.
     A run that fails otherwise stops the sweep with its last line. Each run's folder is
     output_dir/runs/<setting>/seed-<seed>/, with its run.log; report.py summarizes the records.
"""
import concurrent.futures
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bert_read_step_to_step.sweep.plan import SweepError, recorded_argv, run_argv
from bert_read_step_to_step.sweep.records import DIVERGED, FINISHED, save_results
from transformers.file_utils import PICKLE_WEIGHTS_NAME, SAFE_WEIGHTS_NAME

RUN_CLASSIFIER = Path(__file__).resolve().parents[2] / "run_classifier.py"
# The program a run is: run_classifier.py under this Python. Tests put a small script here that exits the way
# run_classifier does (0 with eval_results.json, 3 on divergence, 2 on a user error) to check the handling.
RUN_COMMAND = (sys.executable, str(RUN_CLASSIFIER))
RUN_LOG_NAME = "run.log"
# run_classifier's exit code when training stopped on a non-finite loss or gradient (it writes no NaN weights).
DIVERGED_EXIT_CODE = 3


class RunDiverged(Exception):
    """A run stopped because training diverged; `reason` is its last line (step, loss, hint)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def train_and_evaluate(argv, log_path, verbose=False, threads=None):
    """One fine-tuning run, `python run_classifier.py ARGV` in a process of its own: returns the final
    model's dev metrics (its eval_results.json), e.g. {"acc": 0.71}. Its output goes to log_path, and to
    this console too when verbose. threads: the CPU threads its torch may use (None: torch's own choice).

    Exit code 3 (training diverged) raises RunDiverged, which the sweep records; any other non-zero exit
    raises SweepError with the run's last line, which stops the sweep (runs under way are finished and
    saved first). Tests replace this function with a fake to check the bookkeeping."""
    command = [*RUN_COMMAND, *argv]
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
    if code == DIVERGED_EXIT_CODE:
        raise RunDiverged(last_line)
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


def run_folder(output_dir, setting, seed):
    return os.path.join(output_dir, "runs", setting.label, f"seed-{seed}")


def run_one(args, config, document, runs_data_dir, output_dir, setting, seed, threads=None):
    """Train and score one (setting, seed) in a clean run folder. Returns its results.json record, which
    the caller appends to the document (one thread appends and saves, however many runs are under way)."""
    run_dir = run_folder(output_dir, setting, seed)
    if os.path.isdir(run_dir):
        # An interrupted earlier attempt of this sweep (its (setting, seed) has no record, or it would not be
        # run again): start it clean. No other sweep can own it: sweep_lock holds the folder.
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    argv = run_argv(config, runs_data_dir, setting, seed, run_dir)
    started = time.perf_counter()
    try:
        metrics = train_and_evaluate(argv, os.path.join(run_dir, RUN_LOG_NAME), args.verbose, threads=threads)
        status, reason = FINISHED, None
    except RunDiverged as diverged:
        metrics, status, reason = {}, DIVERGED, diverged.reason
    seconds = time.perf_counter() - started
    if not args.keep_models:
        remove_weights(run_dir)
    metric = document["primary_metric"]
    score = metrics.get(metric)
    if status == FINISHED and not (isinstance(score, (int, float)) and math.isfinite(score)):
        # run_classifier stops a diverging run itself (exit 3); a NaN score that slips through is the same
        # event, and must not reach a mean.
        status, reason, score = DIVERGED, f"dev {metric} is {score!r}", None
    # results.json is strict JSON (NaN is not JSON): a non-finite metric is stored as null.
    metrics = {name: None if isinstance(value, float) and not math.isfinite(value) else value
               for name, value in metrics.items()}
    record = {
        "setting": setting.label, "reinit_layers": setting.layers, "reinit_pooler": setting.pooler,
        "use_bertadam": setting.bertadam, "mixout": setting.mixout, "prior_weight_decay": setting.prior_wd,
        "seed": seed, "status": status, "metrics": metrics, "primary_metric": metric,
        "score": score if status == FINISHED else None,
        "run_seconds": round(seconds, 1), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "output_dir": os.path.relpath(run_dir, output_dir), "argv": recorded_argv(argv)}
    if reason is not None:
        record["diverged"] = reason
    return record


def usable_cores():
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_worker(workers):
    """The CPU cores this process may use, shared out between `workers` runs at once (at least 1 each):
    two runs of 8 threads each on 8 cores would spend their time waiting for each other."""
    return max(1, usable_cores() // workers)


def run_all(args, config, document, runs_data_dir, output_dir, todo, results_path):
    """Run `todo` ((setting, seed) pairs), saving results.json after each finished run, so an interrupted
    sweep keeps what it finished. With --workers N > 1, N at a time in parallel processes, each with its share
    of the cores (threads_per_worker). The runs share one feature cache in the runs' data folder: the first run
    to need it builds it while the others wait for it (features.load_and_cache_features), so the data are
    tokenized once per sweep. A failed run stops the sweep once the runs under way have finished and been
    saved."""
    started = time.perf_counter()
    threads = threads_per_worker(args.workers) if args.workers > 1 else None

    def start(number, setting, seed):
        print(f"[{number}/{len(todo)}] setting {setting.label}, seed {seed}: training (log: "
              f"{os.path.join(run_folder(output_dir, setting, seed), RUN_LOG_NAME)})", flush=True)
        return run_one(args, config, document, runs_data_dir, output_dir, setting, seed, threads)

    def finish(done, record):
        document["runs"].append(record)
        save_results(document, results_path)
        left = (time.perf_counter() - started) / done * (len(todo) - done)
        outcome = f"dev {document['primary_metric']} {record['score']:.4f}" if record["status"] == FINISHED \
            else f"DIVERGED, no score ({record['diverged']})"
        print(f"[{done}/{len(todo)}] setting {record['setting']}, seed {record['seed']}: {outcome} in "
              f"{record['run_seconds']:.0f} s; about {left / 60:.0f} min left", flush=True)

    numbered = list(enumerate(todo, start=1))
    if args.workers == 1:
        for number, (setting, seed) in numbered:
            finish(number, start(number, setting, seed))
        return
    print(f"Running {len(numbered)} runs {args.workers} at a time, {threads} torch thread"
          f"{'s' if threads > 1 else ''} each", flush=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(start, number, setting, seed) for number, (setting, seed) in numbered]
        failure = None
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            if future.cancelled():
                continue  # cancelled after a failure below; result() would raise CancelledError (a BaseException)
            try:
                finish(done, future.result())
            except Exception as error:  # noqa: BLE001 (re-raised below, after the runs under way are saved)
                if failure is None:
                    failure = error
                    for pending in futures:
                        pending.cancel()  # runs not started yet; the ones under way finish and are saved
        if failure is not None:
            raise failure
