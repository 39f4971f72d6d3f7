"""Figure 9 of benchmarks/run.py: the default re-init sweep, timed from this tree and from an older commit's,
with each sweep's dev scores per setting (only with --only sweep: it takes about 25 minutes)."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bert_read_step_to_step.reinit_sweep import summarize

from .harness import REPO_ROOT, WorkerFailed, log
from .sections import prepare_demo_data

# The sweep section's "current path": main just before issue 15's speed work (length-bucketed batches,
# features built once per sweep, --workers), the code whose default sweep took 11.5 minutes on 2 idle cores.
SWEEP_BASELINE = "7a38175"
# --quick runs each sweep with this --seeds instead of its default (every setting, one seed).
SWEEP_QUICK_SEEDS = "1"


class SweepFailed(WorkerFailed):
    """A sweep exited non-zero or left no results; its folder is kept, and the message names its log."""


def resolve_commit(ref):
    """The full hash of git commit `ref` of this repository, or None if git knows no such commit."""
    try:
        proc = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                              capture_output=True, text=True)
    except OSError:  # no git on this machine
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def extract_commit(commit, target):
    """The files of `commit` in `target`: `git archive COMMIT | tar -x -C TARGET`, the tree as committed
    (no .git, nothing untracked), so the code run from there is literally that commit's."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], capture_output=True)
    if archive.returncode != 0:
        raise WorkerFailed(f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}")
    untar = subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, capture_output=True)
    if untar.returncode != 0:
        raise WorkerFailed(f"tar -x of git archive {commit} into {target} failed: "
                           f"{untar.stderr.decode(errors='replace').strip()}")


def sweep_figures(document):
    """What the sweep section reports from one sweep's results.json `document` (at least one run): the
    number of runs, each run's run_seconds and their mean, the primary metric, and per setting label its seeds
    and dev scores with mean, sample std (None for one seed), min and max, as reinit_sweep.summarize counts
    them for the sweep's own summary.md."""
    runs = document["runs"]
    seconds = [float(record["run_seconds"]) for record in runs]
    return {"runs": len(runs), "primary_metric": document["primary_metric"], "run_seconds": seconds,
            "run_seconds_mean": statistics.mean(seconds),
            "settings": {each.setting.label: {"seeds": each.seeds, "scores": each.scores, "mean": each.mean,
                                              "std": each.std, "min": each.min, "max": each.max}
                         for each in summarize(runs)}}


def run_sweep(side, tree, data_dir, output_dir, options):
    """`python -m bert_read_step_to_step.reinit_sweep --data_dir D --output_dir O [OPTIONS]` started in
    `tree`, so that tree's code runs with its own defaults; the whole command's wall time and the figures of
    its results.json. Its output goes to a log beside output_dir, not to this console."""
    command = [sys.executable, "-m", "bert_read_step_to_step.reinit_sweep", "--data_dir", str(data_dir),
               "--output_dir", str(output_dir), *options]
    log_path = output_dir.parent / f"sweep-{side}.log"
    log(f"  sweep ({side}) from {tree}, output in {log_path} ...")
    load_before = os.getloadavg()[0]
    with open(log_path, "w", encoding="utf-8") as log_file:
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=tree, stdout=log_file, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SweepFailed(f"sweep ({side}) failed (rc={proc.returncode}), its output: {log_path}")
    results_path = output_dir / "results.json"
    try:
        document = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SweepFailed(f"sweep ({side}) exited 0 but {results_path} is unreadable ({error}), its output: "
                          f"{log_path}") from None
    if not document.get("runs"):
        raise SweepFailed(f"sweep ({side}) exited 0 but {results_path} holds no runs, its output: {log_path}")
    figures = sweep_figures(document)
    log(f"  sweep ({side}): {seconds / 60:.1f} min for {figures['runs']} runs")
    return dict(figures, wall_seconds=seconds, load_average_1min=[load_before, os.getloadavg()[0]])


def bench_sweep(quick, commit, given):
    """The default re-init sweep timed twice: from this working tree ("ours") and from the tree of git
    commit `commit` (the current path, `given` as --sweep_baseline named it), on the same demo data, each
    into its own output folder and otherwise with its own defaults; --quick adds --seeds SWEEP_QUICK_SEEDS.

    Everything lives in a folder of its own rather than the benchmark's temporary one: when a sweep fails,
    the folder stays, with the log that the error names. After two good sweeps it is removed.
    """
    options = ["--seeds", SWEEP_QUICK_SEEDS] if quick else []
    folder = Path(tempfile.mkdtemp(prefix="bert-bench-sweep-"))
    try:
        tree = folder / f"tree-{commit[:10]}"
        extract_commit(commit, tree)
        data_dir = prepare_demo_data(folder / "tweets")
        out = {"baseline_commit": commit, "baseline_given": given, "options": options}
        # Ours first: what the first sweep warms up (the page cache of the model, of Python's and torch's
        # files) then helps the baseline, so any such error makes the ratio smaller, not larger.
        for side, cwd in (("ours", REPO_ROOT), ("baseline", tree)):
            out[side] = run_sweep(side, cwd, data_dir, folder / f"output-{side}", options)
    except SweepFailed:
        raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    return out


def score_cell(stats):
    """One setting's dev scores x100 as `mean ± std [min-max]`; a single seed has no std."""
    spread = "" if stats["std"] is None else f" ± {stats['std'] * 100:.1f}"
    return f"{stats['mean'] * 100:.1f}{spread} [{stats['min'] * 100:.1f}-{stats['max'] * 100:.1f}]"


def report_sweep(rep, res, quick):
    quick_label = f", --quick: --seeds {SWEEP_QUICK_SEEDS} only" if quick else ""
    if "error" in res:
        rep.section(f"9. the default re-init sweep{quick_label}")
        rep.row("error: " + res["error"], None, None)  # whole: it ends with the path of the failed sweep's log
        rep.goal("default sweep <= 6 min on this machine", "error", "<= 6.0 min", None)
        rep.goal("sweep >= 2x the current path", "error", ">= 2.00x", None)
        return
    ours, base = res["ours"], res["baseline"]
    commit = res["baseline_commit"][:7]
    rep.section(f"9. the default re-init sweep (reinit_sweep, {len(ours['settings'])} settings, {ours['runs']} runs)"
                f"{quick_label}; reference = the current path, commit {commit}; ratio = current path / ours")
    minutes = {side: res[side]["wall_seconds"] / 60 for side in ("ours", "baseline")}
    ratio = minutes["baseline"] / minutes["ours"]
    rep.row("default sweep wall time, minutes", f"{minutes['ours']:.1f}", f"{minutes['baseline']:.1f}", ratio)
    rep.row("runs", str(ours["runs"]), str(base["runs"]), None)
    rep.row("seconds per run (mean of run_seconds)", f"{ours['run_seconds_mean']:.1f}",
            f"{base['run_seconds_mean']:.1f}", base["run_seconds_mean"] / ours["run_seconds_mean"])
    # The dev scores say what the faster path does to results: the same settings and seeds on other batches.
    # Ratio column: the difference of the means, in points.
    metric = ours["primary_metric"]
    labels = list(ours["settings"]) + [label for label in base["settings"] if label not in ours["settings"]]
    for label in labels:
        o, b = ours["settings"].get(label), base["settings"].get(label)
        diff = f"{(o['mean'] - b['mean']) * 100:+.1f} pts" if o and b else "-"
        rep.row(f"dev {metric} x100, setting {label}: mean ± std [min-max]", score_cell(o) if o else None,
                score_cell(b) if b else None, diff)
    if quick:
        rep.goal("default sweep <= 6 min on this machine", f"{minutes['ours']:.1f} min for {ours['runs']} runs",
                 "<= 6.0 min (full run only)", None)
    else:
        rep.goal("default sweep <= 6 min on this machine", f"{minutes['ours']:.1f} min", "<= 6.0 min",
                 minutes["ours"] <= 6)
    rep.goal("sweep >= 2x the current path", f"{ratio:.2f}x", ">= 2.00x", ratio >= 2)
    rep.notes.append(f"sweep: the current path is commit {res['baseline_commit']} (--sweep_baseline "
                     f"{res['baseline_given']}), extracted with git archive and run from its own tree; both sweeps got "
                     f"--data_dir and --output_dir{' and ' + ' '.join(res['options']) if res['options'] else ''} "
                     "only, ours first. The two sweeps run one after the other, not in turns, so a busy spell during "
                     "one of them moves the ratio. Runs in parallel workers overlap, so runs x seconds per run can "
                     "exceed the wall time")
