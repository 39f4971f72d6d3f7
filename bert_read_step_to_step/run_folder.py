"""The run's output_dir: who may write into it, and the records of what a run did there.

In:  run_classifier's arguments (--output_dir, --overwrite_output_dir, --do_train ...), the Runtime, and
     after loading the model its config and loading report.
Out: `output_dir_problem` (is this folder one the run may write into? checked before any work), the
     `output_dir_lock` a run holds while it writes, `start_writing` (the one place a run begins writing into
     output_dir: its run record), `write_results` for eval/test scores, and `checkpoint_dirs`, the
     checkpoint-N folders in step order that --eval_all_checkpoints scores.

Files written here:
    run.lock                 who holds the folder (emptied, not removed, when the run ends)
    training_args.json       every argument of a training run and the precision it used
    reinit_keys.json         the re-init selectors, std, seed and the keys they resolved to (and, where
                             weights shared across depths make --reinit_layers N change more than the
                             top N depths, the sentence that says which: reinit_layers_meaning)
    eval_args.json / predict_args.json   the same for an evaluation- or prediction-only run
    {eval,test}_results.json / .txt      the scores
"""
import contextlib
import fcntl
import fnmatch
import glob
import logging
import os
import shutil
import socket
import time

from bert_read_step_to_step.curves import DEFAULT_LOGGING_DIR, LOG_NAME, PLOT_NAME
from bert_read_step_to_step.model_setup import reinit_layers_meaning, reinit_selectors
from transformers.file_utils import (UserError, recover_folders_in, redact_url, replace_path, write_atomically,
                                     write_json_atomically)

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
ARGS_NAME = "training_args.json"
REINIT_RECORD_NAME = "reinit_keys.json"


# What runs of this project write into output_dir (run.lock aside). --overwrite_output_dir moves exactly these
# away; files a run did not write (data, a feature cache) stay. The curves (curves.py) are among them, so that an
# overwriting run starts a new history instead of appending to the old one.
RUN_FILES = ("checkpoint-*", ".checkpoint-*", ARGS_NAME, REINIT_RECORD_NAME, "eval_args.json", "predict_args.json",
             "*_results.json", "*_results.txt", "*_predictions.tsv", "weight_change.json", "weight_change.png",
             LOG_NAME, PLOT_NAME, DEFAULT_LOGGING_DIR,
             "config.json", "model.safetensors", "pytorch_model.bin", "vocab.txt", "vocab.json", "merges.txt",
             "spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# A run's first result: once one exists, the run it replaced can go.
RESULT_FILES = ("checkpoint-*", "model.safetensors", "*_results.json", "*_predictions.tsv")
PREVIOUS_RUN = ".previous-run"  # the replaced run's files, until this run's first result
MOVING_ASIDE = ".previous-run.moving"  # while they are being moved there


def output_dir_problem(args):
    """Why this run may not write into --output_dir (one line naming the flag), or None when it may."""
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        return f"--output_dir {args.output_dir} is a file, not a folder"
    if args.overwrite_output_dir and args.do_train and args.resume_from_checkpoint and \
            is_within(args.resume_from_checkpoint, args.output_dir):
        return (f"--resume_from_checkpoint {args.resume_from_checkpoint} lies inside --output_dir, which "
                "--overwrite_output_dir replaces: drop --overwrite_output_dir to continue that run there")
    # The lock file of an earlier run does not make a folder "not empty": it holds no result.
    existing = os.path.isdir(args.output_dir) and set(os.listdir(args.output_dir)) - {LOCK_NAME}
    if args.do_train and existing and not args.overwrite_output_dir and not args.resume_from_checkpoint:
        return (f"--output_dir {args.output_dir} exists and is not empty; use --overwrite_output_dir "
                "to write into it, or --resume_from_checkpoint to continue a run")
    return None


@contextlib.contextmanager
def output_dir_lock(args, runtime):
    """Hold output_dir/run.lock for the whole run, so that a second run into the same folder stops at once
    instead of mixing its model, checkpoints and arguments with ours.

    The lock is an flock, which the kernel drops when the process dies, so a killed run never blocks the
    next. Its file says who holds it (pid, host, start time); a run that finds that text there after
    taking the lock knows the previous holder died without cleaning up, says so, and takes over. Under
    torchrun rank 0 holds it for all ranks.
    """
    if not runtime.is_main:
        yield
        return
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, LOCK_NAME)
    with open(path, "a+", encoding="utf-8") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "a run that has not written its details yet"
            raise UserError(f"--output_dir {args.output_dir} is in use by another run ({holder}, see {path}); "
                            "wait for it to end, or choose another --output_dir") from None
        lock_file.seek(0)
        previous = lock_file.read().strip()
        if previous:
            logger.warning("%s: the run that held it (%s) ended without releasing it; taking it over", path,
                           previous)
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")
        lock_file.flush()
        try:
            yield
        finally:
            # Emptied, not removed: removing it would let a run that opened the old file lock that one
            # while a third run creates and locks a new one.
            lock_file.truncate(0)
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def start_writing(args, runtime, config, info, plan=None):
    """The first thing a run writes into output_dir, under its lock and after every check has passed: the
    run record. Rank 0 only; the other ranks write nothing here.

    Before it: what a killed run left half-done is put right (a replaced run, a checkpoint folder mid-rename),
    and with --overwrite_output_dir the previous run's files are moved aside, so that nothing of it is scored
    or read as this run's; they are deleted at this run's first result (`discard_previous_run`).
    """
    if not runtime.is_main:
        return
    recover_previous_run(args.output_dir)
    recover_folders_in(args.output_dir)
    if args.overwrite_output_dir and args.do_train:
        set_previous_run_aside(args.output_dir)
    write_run_record(args, runtime, config, info, plan)


def matching(output_dir, patterns):
    names = os.listdir(output_dir)
    return sorted({name for pattern in patterns for name in fnmatch.filter(names, pattern)})


def set_previous_run_aside(output_dir):
    """Move the files an earlier run wrote into output_dir/.previous-run.

    They go into `.previous-run.moving` first, which is renamed to `.previous-run` once all are there: a run
    killed half-way leaves `.moving`, which `recover_previous_run` empties back, so the old run is never
    split between the two folders.
    """
    names = matching(output_dir, RUN_FILES)
    if not names:
        return
    moving, aside = os.path.join(output_dir, MOVING_ASIDE), os.path.join(output_dir, PREVIOUS_RUN)
    os.makedirs(moving)
    for name in names:
        replace_path(os.path.join(output_dir, name), os.path.join(moving, name))
    replace_path(moving, aside)
    logger.info("--overwrite_output_dir: the previous run's %d files and folders moved to %s; deleted once this "
                "run writes its first result", len(names), aside)


def recover_previous_run(output_dir):
    """Put right what a run killed while replacing another left: the old run back when the new one wrote no
    result yet (its records removed), or the old run deleted when the new one has a result."""
    moving, aside = os.path.join(output_dir, MOVING_ASIDE), os.path.join(output_dir, PREVIOUS_RUN)
    if os.path.isdir(moving):  # killed while moving the old files: the new run had written nothing yet
        restore_into(output_dir, moving)
        logger.warning("%s: a run was killed while setting the previous run aside; the previous run is back",
                       output_dir)
    if not os.path.isdir(aside):
        return
    if matching(output_dir, RESULT_FILES):
        shutil.rmtree(aside)
        logger.warning("%s: deleted the run that a killed run had replaced (it had written results)", aside)
        return
    for name in matching(output_dir, RUN_FILES):  # the killed run's records, without any result
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    restore_into(output_dir, aside)
    logger.warning("%s: a run killed before its first result had replaced the previous run; the previous run is "
                   "back", output_dir)


def restore_into(output_dir, folder):
    for name in os.listdir(folder):
        replace_path(os.path.join(folder, name), os.path.join(output_dir, name))
    os.rmdir(folder)


def discard_previous_run(output_dir):
    """This run has a result: the run it replaced is deleted (a no-op when there is none)."""
    aside = os.path.join(output_dir, PREVIOUS_RUN)
    if os.path.isdir(aside):
        shutil.rmtree(aside)
        logger.info("deleted the previous run's files (%s): this run has its first result", aside)


def write_run_record(args, runtime, config, info, plan=None):
    """Every argument (and for training, the resolved reinit list), so a result can be traced to its settings.

    A training run writes training_args.json and reinit_keys.json. An evaluation- or prediction-only run
    writes eval_args.json / predict_args.json instead, so that evaluating a trained folder in place leaves
    the record of how it was trained as it was.
    """
    loading = {"missing_keys": info.missing_keys, "unexpected_keys": info.unexpected_keys}
    if not args.do_train:
        for name in (["eval_args.json"] if args.do_eval else []) + (["predict_args.json"] if args.do_predict else []):
            write_json_atomically(os.path.join(args.output_dir, name), {**args_to_dict(args, runtime), "loading": loading},
                                  sort_keys=True)
        return
    # The std actually drawn with: --reinit_std, or the config's initializer_range when the flag is not given.
    std = args.reinit_std if args.reinit_std is not None else config.initializer_range
    record = {"selectors": reinit_selectors(args, config), "reinit_std": std,
              "reinit_seed": args.seed, "resolved_keys": info.reinit_keys, **loading}
    meaning = reinit_layers_meaning(args, config)  # which depths changed, where that is more than the top N
    if meaning:
        record["reinit_layers_meaning"] = meaning
    write_json_atomically(os.path.join(args.output_dir, REINIT_RECORD_NAME), record)
    warnings = list(plan.warnings) if plan is not None else []
    write_json_atomically(os.path.join(args.output_dir, ARGS_NAME), {**args_to_dict(args, runtime),
                                                                     "warnings": warnings}, sort_keys=True)


# Flags that may hold a URL, whose user:password@ or ?query can be a secret.
URL_FLAGS = ("model_name_or_path", "config_name", "tokenizer_name")


def args_to_dict(args, runtime):
    """What training_args.json records: every argument (URLs' secrets redacted), and the precision the run
    actually used."""
    record = {**vars(args), "precision": runtime.precision}
    for flag in URL_FLAGS:
        if record.get(flag):
            record[flag] = redact_url(record[flag])
    return record


def is_within(path, folder):
    """True when `path` is `folder` or lies inside it, by path logic: /x/Rx1 is not inside /x/Rx."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def checkpoint_dirs(output_dir):
    """output_dir's checkpoint-{step} folders in step order; a folder such as checkpoint-best is not ours."""
    steps = [path.rsplit("-", 1)[1] for path in glob.glob(os.path.join(output_dir, "checkpoint-*"))]
    return [os.path.join(output_dir, f"checkpoint-{step}")
            for step in sorted((step for step in steps if step.isdigit()), key=int)]


def write_results(results_dir, split_name, prefix, examples, results):
    """{split_name}_results.json and .txt (one "metric = value" per line), and the same in the log."""
    os.makedirs(results_dir, exist_ok=True)
    write_json_atomically(os.path.join(results_dir, f"{split_name}_results.json"),
                          {"prefix": prefix, "examples": examples, **results})
    write_atomically(os.path.join(results_dir, f"{split_name}_results.txt"), lambda temp: write_lines(
        temp, [f"{key} = {results[key]}" for key in sorted(results)]))
    logger.info("***** %s results %s (%d examples) *****", split_name.capitalize(), prefix, examples)
    for key in sorted(results):
        logger.info("  %s = %.4f", key, results[key])


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as writer:
        writer.writelines(line + "\n" for line in lines)
