"""The re-init sweep's runs: each (setting, seed) trained and scored by run_classifier.py in its own process,
here or on a worker (launchers.py), and recorded by the process that owns the sweep.

In:  the plan (plan.py: settings, seeds, each run's argv), the runs' data folder (data.py), the results
     document (records.py) and a Launcher.
Out: one record per run appended to the document and saved after each run: status "finished" with the dev
     metrics and score, "diverged" (run_classifier exited 3: a non-finite loss or gradient) with no score,
     or "lost" (its worker died and the engine gave up on it: it runs again next time). Each record says
     where the run ran ("worker") and with how many torch threads. A run that fails otherwise stops the
     sweep with its last line and its worker.

Folders. Each attempt of a run writes its own output_dir/runs/<setting>/seed-<seed>.attempt-<id>/ (see
attempt.py for why). This process, which holds the sweep lock, moves the first attempt that finished into
place as runs/<setting>/seed-<seed>/, the folder the record's output_dir names, and once the sweep ends
removes the other attempts of every recorded run. The attempts of a run that failed stay, with their
run.log, until the run succeeds in a later sweep.
"""
import glob
import math
import os
import shutil
import sys
import time
from pathlib import Path

from bert_read_step_to_step.sweep import attempt
from bert_read_step_to_step.sweep.plan import SweepError, logging_steps, parse_setting, recorded_argv, run_argv
from bert_read_step_to_step.sweep.records import DIVERGED, FINISHED, LOST, save_results
from transformers.file_utils import PICKLE_WEIGHTS_NAME, SAFE_WEIGHTS_NAME, replace_path

RUN_CLASSIFIER = Path(__file__).resolve().parents[2] / "run_classifier.py"
# The program a run is: run_classifier.py under this Python, both by absolute path (a worker runs in a folder
# of its own). Tests put a small script here that exits the way run_classifier does (0 with
# eval_results.json, 3 on divergence, 2 on a user error) to check the handling.
RUN_COMMAND = (sys.executable, str(RUN_CLASSIFIER))


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
    """The run's folder once it is recorded: output_dir/runs/<setting>/seed-<seed>."""
    return os.path.join(output_dir, "runs", setting.label, f"seed-{seed}")


def attempt_folders(output_dir, setting, seed):
    """Every attempt folder of the run that is still on disk (see attempt.run_attempt for the name)."""
    return sorted(glob.glob(glob.escape(run_folder(output_dir, setting, seed)) + ".attempt-*"))


def threads_per_worker(workers):
    """The CPU cores this process may use, shared out between `workers` runs at once (at least 1 each):
    two runs of 8 threads each on 8 cores would spend their time waiting for each other."""
    return max(1, attempt.usable_cores() // workers)


def run_threads(args, launcher):
    """The torch threads of each run: --threads_per_run, or the launcher's default (locally cores / workers,
    torch's own choice with one worker; on Dask and Slurm the CPUs the task was given, decided there)."""
    if args.threads_per_run is not None:
        return args.threads_per_run
    if launcher.default_threads is not None:
        return launcher.default_threads
    return threads_per_worker(args.workers) if args.workers > 1 else None


def run_paths(config, runs_data_dir, output_dir):
    """The paths every run reads, which every worker must see at the same absolute path: Python,
    run_classifier.py, the runs' data folder, the model folder (not a URL or a Hub name: each worker fetches
    those into its own cache) and the output folder."""
    model = config["model_name_or_path"]
    return [*RUN_COMMAND, runs_data_dir, *([model] if os.path.exists(model) else []), output_dir]


def attempt_spec(args, config, document, runs_data_dir, output_dir, setting, seed, threads, launcher):
    """What a worker needs to run one attempt (attempt.run_attempt): plain values only."""
    steps = logging_steps(document["data"]["train_examples"], config["batch_size"], config["epochs"])
    return {"label": setting.label, "seed": seed, "launcher": launcher.name, "command": list(RUN_COMMAND),
            "argv": run_argv(config, runs_data_dir, setting, seed, run_folder(output_dir, setting, seed),
                             logging_steps=steps),
            "run_dir": run_folder(output_dir, setting, seed), "paths": run_paths(config, runs_data_dir, output_dir),
            "threads": threads, "verbose": args.verbose}


def place_attempt(attempt_dir, run_dir):
    """Move the finished attempt into place as the run's folder. A folder already there is one no record
    names (a sweep stopped between this move and saving results.json, or a sweep of the older layout that
    reused it): it goes first. Then one rename: the run's folder is whole or not there, never half moved."""
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    replace_path(attempt_dir, run_dir)


def setting_fields(setting, seed):
    return {"setting": setting.label, "reinit_layers": setting.layers, "reinit_pooler": setting.pooler,
            "use_bertadam": setting.bertadam, "mixout": setting.mixout, "prior_weight_decay": setting.prior_wd,
            "seed": seed}


def make_record(outcome, setting, seed, document, output_dir, keep_models, launcher):
    """The results.json record of one run from its outcome (finished or diverged: the attempt folder is
    moved into place first; lost: no folder, the reason)."""
    if outcome["status"] == LOST:
        return {**setting_fields(setting, seed), "status": LOST, "metrics": {}, "primary_metric":
                document["primary_metric"], "score": None, "lost": outcome["reason"], "launcher": launcher,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    run_dir = run_folder(output_dir, setting, seed)
    place_attempt(outcome["attempt_dir"], run_dir)
    if not keep_models:
        remove_weights(run_dir)
    status, reason, metrics = outcome["status"], outcome["reason"], outcome["metrics"]
    metric = document["primary_metric"]
    score = metrics.get(metric)
    if status == FINISHED and not (isinstance(score, (int, float)) and math.isfinite(score)):
        # run_classifier stops a diverging run itself (exit 3); a NaN score that slips through is the same
        # event, and must not reach a mean.
        status, reason, score = DIVERGED, f"dev {metric} is {score!r}", None
    # results.json is strict JSON (NaN is not JSON): a non-finite metric is stored as null.
    metrics = {name: None if isinstance(value, float) and not math.isfinite(value) else value
               for name, value in metrics.items()}
    # The command line as run, naming the folder the run now has (it ran in its attempt folder).
    argv = [run_dir if item == outcome["attempt_dir"] else item for item in outcome["argv"]]
    record = {**setting_fields(setting, seed), "status": status, "metrics": metrics, "primary_metric": metric,
              "score": score if status == FINISHED else None, "run_seconds": round(outcome["seconds"], 1),
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "output_dir": os.path.relpath(run_dir, output_dir),
              "launcher": launcher, "worker": outcome["worker"], "threads_per_run": outcome["threads"],
              "attempt": os.path.basename(outcome["attempt_dir"]), "argv": recorded_argv(argv)}
    if reason is not None:
        record["diverged"] = reason
    return record


def failure_error(outcome, setting, seed):
    """The one line for a run that failed on a worker, or that a worker refused for a path it cannot see."""
    if outcome["status"] == "refused":
        return SweepError(f"worker {outcome['worker']}: {outcome['path']} {outcome['reason']}; every run needs it "
                          f"(setting {setting.label}, seed {seed} was refused there)")
    return SweepError(f"the run failed on worker {outcome['worker']} (setting {setting.label}, seed {seed}, "
                      f"{outcome['reason']}); its whole output is in {outcome['log']}")


def remove_other_attempts(document, output_dir):
    """Once the sweep ends: the attempt folders of every recorded run (finished or diverged) are the ones that
    lost the race, or orphans of a worker that looked dead. A lost or failed run keeps its attempts."""
    for record in document["runs"]:
        if record.get("status", FINISHED) != LOST:
            for folder in attempt_folders(output_dir, parse_setting(record["setting"]), record["seed"]):
                shutil.rmtree(folder, ignore_errors=True)  # an orphan may still be writing in it


def run_all(args, config, document, runs_data_dir, output_dir, todo, results_path, launcher):
    """Run `todo` ((setting, seed) pairs) through `launcher`, saving results.json after each run that ends,
    so an interrupted sweep keeps what it finished. The runs share one feature cache in the runs' data
    folder: the first run to need it builds it while the others wait for it (features.load_and_cache_features),
    so the data are tokenized once per sweep. A failed run stops the sweep: runs not started are cancelled,
    those under way are saved as they end (locally), and the failure is raised."""
    started = time.perf_counter()
    threads = run_threads(args, launcher)
    specs = [attempt_spec(args, config, document, runs_data_dir, output_dir, setting, seed, threads, launcher)
             for setting, seed in todo]
    described = "torch's own choice of" if threads is None else \
        "the CPUs each task is given as" if threads == attempt.CPUS_GIVEN else str(threads)
    where = f"{args.workers} at a time here" if launcher.name == "local" else f"on {launcher.name}"
    print(f"Running {len(specs)} runs {where}, {described} torch threads each; each run's log is run.log in "
          f"its folder under {os.path.join(output_dir, 'runs')}", flush=True)
    failure = None
    try:
        launcher.check(run_paths(config, runs_data_dir, output_dir))
        launcher.start(specs)
        for done, (index, outcome) in enumerate(launcher.completed(), start=1):
            setting, seed = todo[index]
            if outcome["status"] in ("failed", "refused", "raised"):
                if failure is None:
                    failure = outcome["error"] if outcome["status"] == "raised" else \
                        failure_error(outcome, setting, seed)
                    launcher.cancel()
                continue
            if failure is not None and outcome["status"] == LOST:
                continue  # cancelled after the failure (a Slurm job ends "without a result"): not lost
            record = make_record(outcome, setting, seed, document, output_dir, args.keep_models, launcher.name)
            # A run recorded lost by an earlier sweep has run again: its new record replaces that one.
            document["runs"] = [r for r in document["runs"] if (r["setting"], r["seed"]) != (setting.label, seed)]
            document["runs"].append(record)
            save_results(document, results_path)
            print(f"[{done}/{len(todo)}] setting {setting.label}, seed {seed}: {progress(record, document)}"
                  f"{left(started, done, len(todo))}", flush=True)
    finally:
        launcher.close()
        remove_other_attempts(document, output_dir)
    if failure is not None:
        raise failure


def progress(record, document):
    """What one line of progress says about a run that ended."""
    if record["status"] == LOST:
        return f"LOST ({record['lost']}); it runs again when the sweep is run again"
    where = "" if record["launcher"] == "local" else f" on {record['worker']}"
    outcome = f"dev {document['primary_metric']} {record['score']:.4f}" if record["status"] == FINISHED \
        else f"DIVERGED, no score ({record['diverged']})"
    return f"{outcome} in {record['run_seconds']:.0f} s{where}"


def left(started, done, total):
    seconds = (time.perf_counter() - started) / done * (total - done)
    return f"; about {seconds / 60:.0f} min left" if done < total else ""
