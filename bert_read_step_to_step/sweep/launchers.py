"""Where the sweep's runs run: this machine's process pool, a Dask cluster, or Slurm through submitit.

In:  the --launcher options, and the specs of the runs to do (runs.attempt_spec: plain dicts).
Out: a Launcher, the one small interface all three implement:
       check(paths)     before any run: the engine answers, has workers, and they can read every path
       start(specs)     send every run
       completed()      yields (index of the spec, outcome) as each run ends, in the order they end; the
                        outcome is a dict: attempt.run_attempt's, lost(...) when the engine lost the run (its
                        worker or node died for good), or raised(...) when the task itself raised
       cancel()         the sweep stops after a failed run: runs not started are dropped (Slurm jobs and
                        Dask tasks not done are cancelled) and completed() ends; locally the runs under way
                        still finish and come out of completed(), to be saved
       close()          disconnect, free the pool
     The sweep's owner (runs.run_all) reads the outcomes, writes results.json and moves attempt folders: the
     workers only train, so the lock and results.json stay in one process whatever the engine.

What each engine ships: attempt.run_attempt by value (ByValue below), never a reference to a module the
worker would have to import; the run is run_classifier.py by its absolute path. Dask and
submitit are optional packages: asked for and missing, the sweep stops with the pip line.
"""
import concurrent.futures
import os
import shutil
import threading
import time

from bert_read_step_to_step.sweep import attempt
from bert_read_step_to_step.sweep.plan import SweepError

LAUNCHERS = ("local", "dask", "slurm")
# How long the sweep waits for a Dask scheduler to answer, and for a first worker to connect to it.
SCHEDULER_TIMEOUT_S = 20
WORKER_WAIT_S = 30
# submitit's options (--slurm_*): the defaults, documented in --help and docs/reinit_sweep.md.
DEFAULT_SLURM_TIME_MIN = 60
DEFAULT_SLURM_CPUS_PER_TASK = 4
DEFAULT_SLURM_ARRAY_PARALLELISM = 16
SUBMITIT_CLUSTER_VARIABLE = "BERT_READ_SUBMITIT_CLUSTER"
SLURM_LOGS = "slurm"  # submitit's folder under output_dir: each job's stdout, stderr and pickles
POLL_S = 1.0


def lost(reason):
    """The outcome of a run the engine lost: no result, and the reason (recorded; the run runs again)."""
    return {"status": "lost", "reason": reason}


def raised(error):
    """The outcome of a task that raised instead of returning: the sweep stops with `error`."""
    return {"status": "raised", "error": error}


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def engine_error(engine, error):
    """The outcome of a task the engine could not run at all (not a run that failed: attempt.run_attempt
    returns those): the worker's environment is not the sweep's. It stops the sweep, in one line."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    reason = f"{type(error).__name__}: {lines[-1] if lines else error}"
    return raised(SweepError(f"{engine} could not run the task ({reason}); do the workers run the sweep's Python "
                             f"environment (pip install the same packages)?"))


class ByValue:
    """Wraps a function of attempt.py so that any pickler sends its code, never `import ...sweep.attempt`.

    Registering the module with cloudpickle.register_pickle_by_value is not enough on its own: Dask pickles
    the whole task graph with the standard pickle first, and a function met inside it goes by reference,
    which a worker without the project on its path cannot import. This object pickles as a call of
    cloudpickle.loads (cloudpickle comes with Dask and with submitit) on the function's by-value bytes, so
    the worker unpickles the plain function itself.
    """

    def __init__(self, function):
        self.function = function

    def __reduce__(self):
        import cloudpickle
        cloudpickle.register_pickle_by_value(attempt)
        return cloudpickle.loads, (cloudpickle.dumps(self.function),)

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


def optional(module, launcher, pip_name):
    """Import an optional package, or stop with the one pip command that installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SweepError(f"--launcher {launcher} needs the {pip_name} package, which is not installed: "
                         f"pip install '{pip_name}'") from None


class LocalLauncher:
    """--launcher local: `workers` runs at once in threads of this process, each starting its own
    run_classifier process; with one worker, one run after the other in this thread, so a failed run stops
    the sweep before the next starts. A run's exception (a test's fake run) comes back as raised(...)."""
    name = "local"
    default_threads = None  # the sweep's own rule: cores / workers, or torch's choice with one worker

    def __init__(self, workers):
        self.workers = workers
        self.specs, self.pool, self.futures, self.cancelled = [], None, {}, False

    def check(self, paths):
        problem = attempt.unreadable_path(paths)
        if problem is not None:
            raise SweepError(f"{problem[0]} {problem[1]}; every run needs it")

    @staticmethod
    def run(spec):
        # The run function is looked up at each call: tests replace attempt.train_and_evaluate with a fake.
        return attempt.run_attempt(spec, attempt.train_and_evaluate)

    def start(self, specs):
        self.specs = list(specs)
        if self.workers > 1:
            self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.workers)
            self.futures = {self.pool.submit(self.run, spec): index for index, spec in enumerate(self.specs)}

    def completed(self):
        if self.pool is None:
            for index, spec in enumerate(self.specs):
                if self.cancelled:
                    return
                try:
                    yield index, self.run(spec)
                except Exception as error:  # noqa: BLE001 (the sweep re-raises it)
                    yield index, raised(error)
            return
        for future in concurrent.futures.as_completed(self.futures):
            if future.cancelled():
                continue  # result() would raise CancelledError (a BaseException)
            error = future.exception()
            yield self.futures[future], raised(error) if error is not None else future.result()

    def cancel(self):
        self.cancelled = True
        for future in self.futures:
            future.cancel()  # runs not started yet; the ones under way finish, and are saved

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class DaskLauncher:
    """--launcher dask: each run is a task on a running Dask distributed cluster. When a worker dies, the
    scheduler gives its tasks to another worker (up to its allowed-failures, 3 by default); past that the
    run comes back lost."""
    name = "dask"
    default_threads = attempt.CPUS_GIVEN

    def __init__(self, address):
        self.address = address
        self.distributed = optional("distributed", "dask", "dask[distributed]")
        self.client = self.futures = None
        self.cancelled = False

    def check(self, paths):
        self.client = self.connect()
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            raise SweepError(f"--dask_scheduler {self.address}: no worker is connected to the scheduler (waited "
                             f"{WORKER_WAIT_S} s); start one on each machine: dask worker {self.address}") from None
        names = {address: info.get("name", address)
                 for address, info in self.client.scheduler_info()["workers"].items()}
        for address, problem in self.client.run(ByValue(attempt.check_paths), list(paths)).items():
            if problem is not None:
                raise SweepError(f"Dask worker {names.get(address, address)}: {problem[0]} {problem[1]}; every run "
                                 f"needs it, so the sweep sends none")

    def connect(self):
        """A Client of the scheduler, or the one line naming it when it does not answer in time.

        Client(timeout=...) bounds the TCP connection but not the wait for the scheduler's first reply: a port
        that accepts and never speaks (a hung scheduler, another service) would hang the sweep. So the Client
        is made in a thread of its own, waited for SCHEDULER_TIMEOUT_S; a daemon thread, which cannot keep the
        process alive after the error."""
        made = {}

        def make():
            try:
                made["client"] = self.distributed.Client(self.address, timeout=SCHEDULER_TIMEOUT_S,
                                                         set_as_default=False)
            except (OSError, TimeoutError) as error:
                made["error"] = error
        thread = threading.Thread(target=make, name="dask-connect", daemon=True)
        thread.start()
        thread.join(SCHEDULER_TIMEOUT_S + 1)  # the Client's own timeout first, when it fires
        if "client" in made:
            return made["client"]
        reason = type(made["error"]).__name__ if "error" in made else "no reply"
        raise SweepError(f"--dask_scheduler {self.address}: the scheduler did not answer within "
                         f"{SCHEDULER_TIMEOUT_S} s ({reason}); is `dask scheduler` running there? Give the address "
                         f"it prints (tcp://HOST:8786)")

    def start(self, specs):
        # pure=False: two runs with equal specs (there are none) would still be two tasks; the key names the
        # run in Dask's dashboard.
        self.futures = {}
        for index, spec in enumerate(specs):
            key = f"reinit-sweep-{spec['label']}-seed-{spec['seed']}-{os.urandom(4).hex()}"
            self.futures[self.client.submit(ByValue(attempt.run_attempt), spec, pure=False, key=key)] = index

    def completed(self):
        # Polled, like the Slurm jobs below: distributed.as_completed wants a default client, and this
        # client is not made the process's default (tests hold several sweeps in one process).
        waiting = dict(self.futures)
        while waiting and not self.cancelled:
            for future in [future for future in waiting if future.done()]:
                index = waiting.pop(future)
                if future.cancelled():
                    continue
                try:
                    yield index, future.result()
                except self.distributed.KilledWorker as error:
                    yield index, lost(f"the Dask workers running it died ({error})")
                except Exception as error:  # noqa: BLE001 (run_attempt returns its failures: this one is Dask's)
                    yield index, engine_error("Dask", error)
            if waiting:
                time.sleep(POLL_S)

    def cancel(self):
        # A run already running on a worker finishes there, unrecorded: its attempt folder is removed later.
        self.cancelled = True
        self.client.cancel([future for future in self.futures if not future.done()])

    def close(self):
        if self.client is not None:
            self.client.close()


class SlurmLauncher:
    """--launcher slurm: the runs as one Slurm job array through submitit (executor.map_array), its logs in
    output_dir/slurm/. BERT_READ_SUBMITIT_CLUSTER=local runs the same code through submitit's local executor
    (jobs are processes on this machine): for tests and a dry run on a laptop. A job that Slurm ends without
    a result (node failure, time limit, scancel) comes back lost."""
    name = "slurm"
    default_threads = attempt.CPUS_GIVEN

    def __init__(self, output_dir, partition, time_min, cpus_per_task, array_parallelism):
        self.submitit = optional("submitit", "slurm", "submitit")
        self.uncompleted = optional("submitit.core.utils", "slurm", "submitit").UncompletedJobError
        self.cluster = "local" if os.environ.get(SUBMITIT_CLUSTER_VARIABLE) == "local" else "slurm"
        self.folder = os.path.join(output_dir, SLURM_LOGS)
        self.parameters = {"timeout_min": time_min, "cpus_per_task": cpus_per_task, "slurm_partition": partition,
                           "slurm_array_parallelism": array_parallelism, "name": "reinit_sweep"}
        self.jobs = None
        self.cancelled = False

    def check(self, paths):
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise SweepError(f"--launcher slurm: sbatch is not on this machine's PATH; run the sweep on a Slurm "
                             f"login node (or set {SUBMITIT_CLUSTER_VARIABLE}=local for a dry run here)")
        # The nodes are checked by each job itself (attempt.run_attempt refuses a path it cannot read):
        # Slurm has no cheap way to run a probe on every node first. This machine must see them already.
        problem = attempt.unreadable_path(paths)
        if problem is not None:
            raise SweepError(f"{problem[0]} {problem[1]}; every run needs it")

    def start(self, specs):
        executor = self.submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        executor.update_parameters(**{key: value for key, value in self.parameters.items() if value is not None})
        self.jobs = dict(zip(executor.map_array(ByValue(attempt.run_attempt), specs), range(len(specs))))
        how = "submitit's local executor" if self.cluster == "local" else "sbatch"
        print(f"Submitted {len(specs)} runs as one job array ({how}); submitit's logs: {self.folder}", flush=True)

    def completed(self):
        waiting = dict(self.jobs)
        while waiting and not self.cancelled:
            for job in [job for job in waiting if job.done()]:
                index = waiting.pop(job)
                try:
                    outcome = job.result()
                except self.uncompleted as error:
                    outcome = lost(f"{self.cluster} job {job.job_id} ended without a result: {first_line(error)}")
                except Exception as error:  # noqa: BLE001 (a job whose task raised: submitit's FailedJobError)
                    outcome = engine_error(f"{self.cluster} job {job.job_id}", error)
                remove_pickles(job)
                yield index, outcome
            if waiting:
                time.sleep(POLL_S)

    def cancel(self):
        # scancel for Slurm: a cancelled job leaves no result to wait for.
        self.cancelled = True
        for job in self.jobs or ():
            if not job.done():
                job.cancel(check=False)

    def close(self):
        pass


def remove_pickles(job):
    """submitit keeps each job's task and result as pickles in output_dir/slurm/, and the task holds the run's
    command line unredacted (a model URL's password, say): once the job is done they go; the logs stay."""
    for path in (job.paths.submitted_pickle, job.paths.result_pickle):
        if os.path.isfile(path):
            os.remove(path)


def make_launcher(args, output_dir):
    """The Launcher the arguments ask for."""
    if args.launcher == "dask":  # main.parse_args has made sure --dask_scheduler is given
        return DaskLauncher(args.dask_scheduler)
    if args.launcher == "slurm":
        return SlurmLauncher(output_dir, args.slurm_partition, args.slurm_time, args.slurm_cpus_per_task,
                             args.slurm_array_parallelism)
    return LocalLauncher(args.workers)
