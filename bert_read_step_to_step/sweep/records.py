"""The re-init sweep's bookkeeping on disk: who owns the output folder, and results.json.

In:  the sweep's --output_dir, and the results document main.py builds and runs.py extends.
Out: sweep_lock, held for the whole sweep, so a second sweep into the same folder is refused naming the
     running one's pid; load_results / save_results, which read results.json (refusing a damaged one with
     file and line) and replace it atomically; check_same_sweep, which refuses to extend a sweep whose
     values differ. report.py reads the same document.

Run record statuses: "finished" (a score), "diverged" (run_classifier stopped on a non-finite loss or
gradient, exit code 3: no score) and "lost" (its worker or node died and the engine gave up on it: no score,
the reason in "lost"; it is not a result, so the next sweep runs it again and its new record replaces this
one). Records written before statuses existed have none and finished.
"""
import contextlib
import errno
import fcntl
import json
import os

from bert_read_step_to_step.sweep.plan import SweepError, parse_setting, recorded_config
from transformers.file_utils import write_json_atomically

RESULTS_NAME = "results.json"
RESULTS_FORMAT = 1
LOCK_NAME = "sweep.lock"
FINISHED, DIVERGED, LOST = "finished", "diverged", "lost"
RUN_STATUSES = (FINISHED, DIVERGED, LOST)


# ==== one sweep per folder =================================================================================

@contextlib.contextmanager
def sweep_lock(output_dir):
    """Own `output_dir` for the time of the `with` block, or refuse at once naming the sweep that owns it.

    The lock is a flock on output_dir/sweep.lock, which holds the owner's pid. It is not waited for: a
    second sweep into the same folder would rewrite results.json, the summaries and the run folders under
    the first one's feet, so it stops with one line instead. The kernel drops a flock when its process
    dies, however it dies, so the lock file a killed sweep leaves behind (its pid, now dead) is simply
    taken over by the next sweep; nothing has to judge whether a pid is still alive.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_NAME)
    lock_file = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            lock_file.seek(0)
            owner = lock_file.read().strip() or "unknown (it is just starting)"
            raise SweepError(f"{output_dir}: another sweep is running in this folder (pid {owner}, lock "
                             f"{path}); wait for it to finish, or give another --output_dir") from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        try:
            yield path
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    finally:
        lock_file.close()


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
    """Every record must name its setting and seed, once per (setting, seed), and carry a score unless it
    diverged (status "diverged": no score)."""
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
        status = record.get("status", FINISHED)  # records from before statuses existed all finished
        if status not in RUN_STATUSES:
            raise SweepError(f"{where} has status {status!r}, expected one of {', '.join(RUN_STATUSES)}; {advice}")
        # A diverged or lost run has no score (None), and must not pass one off as a number.
        score_kind = type(None) if status in (DIVERGED, LOST) else (int, float)
        for key, kind in (("setting", str), ("seed", int), ("score", score_kind), ("metrics", dict)):
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
    saved, current = recorded_config(saved), recorded_config(current)  # URLs compared as they are stored
    changed = [f"{key}: {saved.get(key)!r} there, {value!r} now" for key, value in current.items()
               if saved.get(key) != value]
    if changed:
        raise SweepError(f"{path} belongs to a sweep with other values ({'; '.join(changed)}). Between calls "
                         f"only --seeds and --settings may change: give the same values, or another --output_dir")
