"""What a worker executes for one run of the sweep: check the paths, make the attempt's own folder, run
`python run_classifier.py ...` in it, and say how it ended.

In:  a spec (a plain dict, built by runs.attempt_spec in the process that owns the sweep): the command
     (Python and run_classifier.py, absolute paths), the run's argv whose --output_dir names the run's final
     folder, the paths every run needs, the torch threads, and which launcher sent it.
Out: a plain dict: "status" (finished, diverged, failed, refused), the dev metrics, the run's last line,
     where it ran ("worker"), the attempt folder it wrote, the argv and threads it ran with, its seconds.

Why this file imports the standard library only: it is what a Dask worker or a Slurm job executes, and
such a worker runs in its own folder with only the venv on its import path, as on a cluster where the code
sits on a shared filesystem and nobody installed it. launchers.py ships this module to the worker by value
(cloudpickle.register_pickle_by_value), so nothing in it may import bert_read_step_to_step or transformers;
the run itself is run_classifier.py, started by its absolute path, which finds its packages next to it.
For the same reason nothing raises across the wire: a run that ends badly is a status in the returned dict.

Why each attempt has its own folder (<run folder>.attempt-<host>-<pid>-<random>): a run whose worker
looked dead is run again elsewhere, while the first attempt may still be writing on a machine that was only
slow. Two attempts never share a folder; the sweep's owner moves the first one to finish into place.
"""
import json
import os
import socket
import subprocess
import sys
import time
import uuid

RUN_LOG_NAME = "run.log"
# run_classifier's exit code when training stopped on a non-finite loss or gradient (it writes no NaN weights).
DIVERGED_EXIT_CODE = 3
# spec["threads"] meaning "as many as the CPUs this task was given" (Dask and Slurm's default).
CPUS_GIVEN = "cpus_given"


class RunDiverged(Exception):
    """A run stopped because training diverged; `reason` is its last line (step, loss, hint)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class RunFailed(Exception):
    """A run exited non-zero for another reason; `last_line` is the last line it printed."""

    def __init__(self, code, last_line):
        super().__init__(f"exit {code}: {last_line}")
        self.code, self.last_line = code, last_line


def train_and_evaluate(argv, log_path, verbose=False, threads=None, command=None):
    """One fine-tuning run, `COMMAND ARGV` (command: Python and run_classifier.py) in a process of its own:
    returns the final model's dev metrics (its eval_results.json), e.g. {"acc": 0.71}. Its output goes to
    log_path, and to this process's stderr too when verbose. threads: the CPU threads its torch may use
    (None: torch's own choice). Exit 3 raises RunDiverged, any other non-zero exit RunFailed. Tests replace
    this function with a fake (in the sweep's own process) to check the bookkeeping."""
    # torch sizes its thread pool from these when it starts, so the run uses `threads` from its first op.
    env = None if threads is None else dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen([*command, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
        raise RunFailed(code, last_line)
    with open(os.path.join(argv[argv.index("--output_dir") + 1], "eval_results.json"), encoding="utf-8") as f:
        results = json.load(f)
    return {name: value for name, value in results.items() if name not in ("prefix", "examples")}


def worker_name(launcher):
    """Where this task runs: the Dask worker's name, "<cluster> job <id> on <host>" under submitit (Slurm,
    or its local executor), or "local <host>" for the sweep's own process pool."""
    if launcher == "dask":
        from distributed import get_worker  # the worker's venv has it: it is running a Dask worker
        return str(get_worker().name)
    if launcher == "slurm":
        import submitit
        environment = submitit.JobEnvironment()
        return f"{environment.cluster} job {environment.job_id} on {environment.hostname}"
    return f"local {socket.gethostname()}"


def usable_cores():
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpus_given(launcher):
    """The CPUs this task was given: Slurm's --cpus-per-task (SLURM_CPUS_PER_TASK), or on a Dask worker the
    cores it may use shared between the tasks it runs at once (its --nthreads); else the cores it may use."""
    if launcher == "dask":
        from distributed import get_worker
        return max(1, usable_cores() // max(1, get_worker().state.nthreads))
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    return usable_cores()


def unreadable_path(paths):
    """(path, why) for the first of `paths` that is not absolute or that this machine cannot read, else None.
    A folder must also be searchable (os.X_OK), or the files in it cannot be opened."""
    for path in paths:
        if not os.path.isabs(path):
            return path, "is not an absolute path (a worker runs in a folder of its own)"
        if not os.path.exists(path):
            return path, "does not exist here (is the filesystem shared, at the same path?)"
        if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
            return path, "is not readable here"
    return None


def check_paths(paths):
    """unreadable_path, as Dask's client.run calls it on every worker before the sweep sends a run."""
    return unreadable_path(paths)


def with_output_dir(argv, folder):
    """argv with the value of its last --output_dir replaced by `folder`."""
    index = len(argv) - 1 - argv[::-1].index("--output_dir")
    return argv[:index + 1] + [folder] + argv[index + 2:]


def run_attempt(spec, train=None):
    """Run one attempt of one run on this machine and return how it ended (see the module's Out). train:
    the function that runs it (train_and_evaluate; the local pool passes the current one, which tests fake)."""
    train = train or train_and_evaluate
    worker = worker_name(spec["launcher"])
    problem = unreadable_path(spec["paths"])
    if problem is not None:
        return {"status": "refused", "worker": worker, "path": problem[0], "reason": problem[1]}
    attempt_dir = f"{spec['run_dir']}.attempt-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(attempt_dir)
    argv = with_output_dir(spec["argv"], attempt_dir)
    threads = cpus_given(spec["launcher"]) if spec["threads"] == CPUS_GIVEN else spec["threads"]
    log_path = os.path.join(attempt_dir, RUN_LOG_NAME)
    outcome = {"worker": worker, "attempt_dir": attempt_dir, "argv": argv, "threads": threads, "log": log_path,
               "metrics": {}, "reason": None}
    started = time.perf_counter()
    try:
        outcome.update(status="finished", metrics=train(argv, log_path, spec["verbose"], threads,
                                                         command=spec["command"]))
    except RunDiverged as diverged:
        outcome.update(status="diverged", reason=diverged.reason)
    except RunFailed as failed:
        outcome.update(status="failed", reason=f"exit {failed.code}: {failed.last_line}")
    outcome["seconds"] = time.perf_counter() - started
    return outcome
