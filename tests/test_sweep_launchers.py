"""The sweep on other engines (bert_read_step_to_step/sweep/launchers.py): a Dask cluster and submitit.

The engines are real and started here: a `dask scheduler` and two `dask worker` processes on loopback, each
worker in a working folder of its own with only the venv on its import path (so a task that needed to
import bert_read_step_to_step would fail, as on a cluster), and submitit's local executor for the Slurm
path. Those tests are marked slow and share one cluster. The one-line refusals that need no cluster come
first and start no process.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from safetensors.torch import load_file

from _support import REPO_ROOT
from bert_read_step_to_step import reinit_sweep
from bert_read_step_to_step.sweep import launchers
from bert_read_step_to_step.sweep import runs as sweep_runs
from bert_read_step_to_step.sweep.plan import SweepError
# fake_run, fake_run_classifier: fixtures, shared by importing them
from test_reinit_sweep import fake_run, fake_run_classifier, results_of, sweep_argv, write_tweets  # noqa: F401

BOUND_S = 300  # a bound on a hang, not a timing: each wait below ends in seconds


@pytest.fixture(scope="module")
def tweets(tmp_path_factory):
    return write_tweets(tmp_path_factory.mktemp("data") / "tweets")


def test_what_a_worker_executes_imports_nothing_of_the_project():
    """attempt.py is shipped to workers that cannot import the project: the standard library only, and
    inside functions the engine the worker itself is running (distributed, submitit)."""
    import ast
    tree = ast.parse((REPO_ROOT / "bert_read_step_to_step" / "sweep" / "attempt.py").read_text(encoding="utf-8"))
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules and modules - set(sys.stdlib_module_names) == {"distributed", "submitit"}


# ---- refusals that need no cluster ---------------------------------------------------------------------

def test_a_missing_optional_package_gets_its_pip_line(tmp_path, tweets, fake_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(SweepError, match=r"^--launcher dask needs the dask\[distributed\] package, which is not "
                                         r"installed: pip install 'dask\[distributed\]'$"):
        reinit_sweep.main(sweep_argv(tweets, tmp_path / "a", "0", "1", "--launcher", "dask",
                                     "--dask_scheduler", "tcp://127.0.0.1:1"))
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(SweepError, match=r"pip install 'submitit'$"):
        reinit_sweep.main(sweep_argv(tweets, tmp_path / "b", "0", "1", "--launcher", "slurm"))
    assert fake_run.calls == []


def test_slurm_without_sbatch_is_refused_in_one_line(tmp_path, tweets, fake_run, monkeypatch):
    monkeypatch.delenv(launchers.SUBMITIT_CLUSTER_VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here (nor anywhere on this machine)
    with pytest.raises(SweepError, match=r"--launcher slurm: sbatch is not on this machine's PATH; run the sweep "
                                         r"on a Slurm login node \(or set BERT_READ_SUBMITIT_CLUSTER=local"):
        reinit_sweep.main(sweep_argv(tweets, tmp_path / "sweep", "0", "1", "--launcher", "slurm"))
    assert fake_run.calls == []


def test_a_scheduler_that_does_not_answer_is_named_within_the_bound(tmp_path, tweets, fake_run, monkeypatch):
    """A port that accepts connections and never speaks: what a hung or wrong scheduler looks like."""
    monkeypatch.setattr(launchers, "SCHEDULER_TIMEOUT_S", 2)
    silent = socket.create_server(("127.0.0.1", 0))
    address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(SweepError, match=rf"^--dask_scheduler {address}: the scheduler did not answer within "
                                             rf"2 s \(no reply\); is `dask scheduler` running there\?"):
            reinit_sweep.main(sweep_argv(tweets, tmp_path / "sweep", "0", "1", "--launcher", "dask",
                                         "--dask_scheduler", address))
        assert time.monotonic() - started < 60
    finally:
        silent.close()
    assert fake_run.calls == []


# ---- a real Dask cluster on loopback -------------------------------------------------------------------

def engine_env():
    """The environment of an engine's processes: the venv, and not the project, on the import path."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1")
    return env


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A `dask scheduler` on loopback; yields its address."""
    folder = tmp_path_factory.mktemp("scheduler")
    address_file = folder / "scheduler.json"
    process = subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                "--no-dashboard", "--scheduler-file", str(address_file)], cwd=folder,
                               env=engine_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + BOUND_S
        while not address_file.exists() or not address_file.read_text().strip().endswith("}"):
            assert process.poll() is None and time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.2)
        import json
        yield json.loads(address_file.read_text())["address"]
    finally:
        stop(process)


@pytest.fixture(scope="module")
def dask_workers(scheduler, tmp_path_factory):
    """Two `dask worker`s (w1, w2), one thread each, no nanny (a killed worker stays dead), each started in
    its own empty folder. Yields {name: Popen}."""
    import distributed
    workers = {}
    for name in ("w1", "w2"):
        folder = tmp_path_factory.mktemp(name)
        workers[name] = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", scheduler, "--nthreads", "1", "--no-nanny", "--name", name,
             "--local-directory", str(folder), "--no-dashboard"], cwd=folder, env=engine_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with distributed.Client(scheduler, timeout=BOUND_S, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=BOUND_S)
        yield workers
    finally:
        for process in workers.values():
            stop(process)


def dask_argv(data, out, settings, seeds, scheduler, *extra):
    return sweep_argv(data, out, settings, seeds, "--launcher", "dask", "--dask_scheduler", scheduler, *extra)


@pytest.mark.slow
def test_a_scheduler_without_workers_is_refused_in_one_line(scheduler, tmp_path, tweets, fake_run, monkeypatch):
    # Runs before any test asks for the workers (pytest keeps the file's order): the scheduler has none yet.
    monkeypatch.setattr(launchers, "WORKER_WAIT_S", 1)
    with pytest.raises(SweepError, match=rf"^--dask_scheduler {scheduler}: no worker is connected to the "
                                         rf"scheduler \(waited 1 s\); start one on each machine: dask worker "):
        reinit_sweep.main(dask_argv(tweets, tmp_path / "sweep", "0", "1", scheduler))
    assert fake_run.calls == []


@pytest.mark.slow
def test_local_dask_and_slurm_sweeps_give_the_same_runs(dask_workers, scheduler, tmp_path, tweets, monkeypatch):
    """One real run (MiniLM, 24 tweets, 3 steps) on each launcher with the same --threads_per_run: the same
    score and the same fine-tuned weights, bit for bit; each record says where it ran."""
    monkeypatch.chdir(tmp_path)  # submitit's local jobs start here: no project on their import path
    monkeypatch.setenv(launchers.SUBMITIT_CLUSTER_VARIABLE, "local")
    common = ("1+pooler", "1", "--threads_per_run", "1", "--keep_models")
    reinit_sweep.main(sweep_argv(tweets, tmp_path / "local", *common))
    reinit_sweep.main(dask_argv(tweets, tmp_path / "dask", *common[:2], scheduler, *common[2:]))
    reinit_sweep.main(sweep_argv(tweets, tmp_path / "slurm", *common, "--launcher", "slurm"))

    records = {name: results_of(tmp_path / name)["runs"] for name in ("local", "dask", "slurm")}
    assert all(len(runs) == 1 and runs[0]["status"] == "finished" for runs in records.values())
    assert records["local"][0]["score"] == records["dask"][0]["score"] == records["slurm"][0]["score"]
    assert {runs[0]["threads_per_run"] for runs in records.values()} == {1}
    assert records["local"][0]["worker"] == f"local {socket.gethostname()}"
    assert records["dask"][0]["worker"] in dask_workers
    assert records["slurm"][0]["worker"].startswith("local job ")  # submitit's local executor: job id, host
    weights = {name: load_file(str(tmp_path / name / "runs" / "1+pooler" / "seed-1" / "model.safetensors"))
               for name in records}
    for name in ("dask", "slurm"):
        assert weights[name].keys() == weights["local"].keys()
        assert all(weights[name][key].equal(weights["local"][key]) for key in weights["local"])
    assert any((tmp_path / "slurm" / "slurm").iterdir())  # submitit's logs, under output_dir
    # ... but not its pickles: the task holds the run's command line unredacted (a model URL's password)
    assert list((tmp_path / "slurm" / "slurm").rglob("*.pkl")) == []
    for name in records:
        assert list((tmp_path / name / "runs").rglob("*.attempt-*")) == []


@pytest.mark.slow
def test_what_a_worker_cannot_read_and_a_run_that_fails_there_are_one_line(dask_workers, scheduler, tmp_path, tweets,
                                                                             fake_run_classifier, monkeypatch):
    with pytest.raises(SweepError, match=r"^the run failed on worker w[12] \(setting 0, seed 5, exit 2: "
                                         r"run_classifier.py: error: --data_dir: no train.tsv\); its whole output "
                                         r"is in .*seed-5\.attempt-.*run\.log$"):
        reinit_sweep.main(dask_argv(tweets, tmp_path / "failing", "0", "5", scheduler))

    monkeypatch.setattr(sweep_runs, "RUN_COMMAND", (sys.executable, "fake_run_classifier.py"))  # relative
    with pytest.raises(SweepError, match=r"^Dask worker w[12]: fake_run_classifier.py is not an absolute path \(a "
                                         r"worker runs in a folder of its own\); every run needs it, so the sweep "
                                         r"sends none$"):
        reinit_sweep.main(dask_argv(tweets, tmp_path / "refused", "0", "1", scheduler))
    assert not (tmp_path / "refused" / "runs").exists()


# Stands in for run_classifier.py. The first attempt of seed 1 writes `first` next to the sweep folder
# (its own pid and its worker's, the process that started it) and waits there; every other attempt
# finishes at once with acc 0.5 + 0.01 * seed and says in its log which attempt it was.
WAITING_RUN_CLASSIFIER = r"""
import json, os, sys, time
argv = sys.argv[1:]
out = argv[len(argv) - 1 - argv[::-1].index("--output_dir") + 1]
seed = int(argv[len(argv) - 1 - argv[::-1].index("--seed") + 1])
marker = os.path.join(os.path.dirname(out), "..", "..", "..", "first")
if seed == 1:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        fd = None
    if fd is not None:
        os.write(fd, f"{os.getpid()} {os.getppid()}".encode())
        os.close(fd)
        print("first attempt: waiting", flush=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.1)
        sys.exit(1)
print(f"attempt in {os.path.basename(out)}")
with open(os.path.join(out, "eval_results.json"), "w") as f:
    json.dump({"acc": 0.5 + 0.01 * seed}, f)
"""


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(dask_workers, scheduler, tmp_path, tweets, monkeypatch, capsys):
    """SIGKILL the worker running seed 1: Dask gives the run to the other worker, whose attempt is recorded;
    the orphan of the first attempt, still running, never reaches the run folder. Run again: all skipped."""
    script = tmp_path / "waiting_run_classifier.py"
    script.write_text(WAITING_RUN_CLASSIFIER, encoding="utf-8")
    monkeypatch.setattr(sweep_runs, "RUN_COMMAND", (sys.executable, str(script)))
    out = tmp_path / "sweep"
    argv = dask_argv(tweets, out, "0", "1,2", scheduler)
    outcome = []
    sweep = threading.Thread(target=lambda: outcome.append(reinit_sweep.main(argv)))  # a failure: outcome empty
    sweep.start()
    marker = tmp_path / "first"
    orphan = None
    try:
        deadline = time.monotonic() + BOUND_S
        while not marker.exists() or len(marker.read_text().split()) < 2:
            assert sweep.is_alive() and time.monotonic() < deadline, "the first attempt of seed 1 never started"
            time.sleep(0.1)
        orphan, worker_pid = map(int, marker.read_text().split())
        (killed,) = [name for name, process in dask_workers.items() if process.pid == worker_pid]
        os.kill(worker_pid, signal.SIGKILL)
        sweep.join(timeout=BOUND_S)
        assert not sweep.is_alive() and outcome, "the sweep did not finish after the worker died"
    finally:
        if orphan is not None:
            try:
                os.kill(orphan, signal.SIGKILL)  # the orphan this test's fake run left running
            except ProcessLookupError:
                pass
    runs = {record["seed"]: record for record in results_of(out)["runs"]}
    assert sorted(runs) == [1, 2] and all(record["status"] == "finished" for record in runs.values())
    assert runs[1]["score"] == pytest.approx(0.51) and runs[2]["score"] == pytest.approx(0.52)
    (survivor,) = set(dask_workers) - {killed}
    assert runs[1]["worker"] == survivor
    log = (out / "runs" / "0" / "seed-1" / "run.log").read_text(encoding="utf-8")
    assert log == f"attempt in {runs[1]['attempt']}\n"  # the second attempt's folder, moved into place
    assert list((out / "runs").rglob("*.attempt-*")) == []  # the orphan's folder is gone too

    capsys.readouterr()
    again = reinit_sweep.main(argv)
    assert (again.ran, again.skipped) == (0, 2)
    assert "skipping 2 already in results.json, 0 to run" in capsys.readouterr().out


# Stands in for run_classifier.py under submitit's local executor: the first attempt kills the job process
# that started it (what a node failure looks like from the sweep: a job that ends without a result) and
# exits; a later attempt finishes with acc 0.6.
NODE_FAILURE_RUN_CLASSIFIER = r"""
import json, os, signal, sys
argv = sys.argv[1:]
out = argv[len(argv) - 1 - argv[::-1].index("--output_dir") + 1]
marker = os.path.join(os.path.dirname(out), "..", "..", "..", "node_failed")
if not os.path.exists(marker):
    open(marker, "w").close()
    os.kill(os.getppid(), signal.SIGKILL)
    sys.exit(1)
with open(os.path.join(out, "eval_results.json"), "w") as f:
    json.dump({"acc": 0.6}, f)
"""


@pytest.mark.slow
def test_a_slurm_job_that_ends_without_a_result_is_recorded_lost_and_runs_again(tmp_path, tweets, monkeypatch,
                                                                                 capsys):
    script = tmp_path / "node_failure_run_classifier.py"
    script.write_text(NODE_FAILURE_RUN_CLASSIFIER, encoding="utf-8")
    monkeypatch.setattr(sweep_runs, "RUN_COMMAND", (sys.executable, str(script)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(launchers.SUBMITIT_CLUSTER_VARIABLE, "local")
    # submitit waits 15 s for the result file of a job that ended (a slow shared filesystem may deliver it
    # late) before it says the job produced none; on this machine's disk 1 s is plenty.
    import submitit.core.core
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)
    argv = sweep_argv(tweets, tmp_path / "sweep", "0", "1", "--launcher", "slurm")
    reinit_sweep.main(argv)
    (record,) = results_of(tmp_path / "sweep")["runs"]
    assert record["status"] == "lost" and record["score"] is None, record
    assert record["lost"].startswith("local job ") and "ended without a result" in record["lost"]
    printed = capsys.readouterr().out
    assert "LOST (local job" in printed, printed

    again = reinit_sweep.main(argv)
    assert (again.ran, again.skipped) == (1, 0)
    (record,) = results_of(tmp_path / "sweep")["runs"]
    assert record["status"] == "finished" and record["score"] == pytest.approx(0.6)
