"""The re-init sweep's training curves: per setting, the training loss over the steps, mean and range over seeds.

In:  the results document (records.py) and, for each finished run, its output_dir/train_log.jsonl, written by
     run_classifier: one JSON object per line; a training row has "step", "epoch", "loss", "learning_rate",
     "grad_norm", an evaluation row has "step" and "eval_<metric>" keys and never a bare "loss" (it is left
     out here). The sweep asks each run for about 20 rows (plan.logging_steps).
Out: in output_dir, curves.csv (setting, step, loss_mean, loss_min, loss_max: over the seeds that logged the
     step) and, with matplotlib, curves.png: each setting's mean curve with its min-max band. A sweep whose
     runs wrote no train_log.jsonl (a run_classifier from before it did) gets no curves, said once.

Only finished runs count: a diverged run's last losses are not finite, and one of them would make the mean
of every later step meaningless. A loss is a mean over the last --logging_steps optimizer steps (what
run_classifier logs), so the curve is already smoothed a little.
"""
import csv
import io
import json
import math
import os
import statistics
from pathlib import Path

from bert_read_step_to_step.sweep.plan import parse_setting
from bert_read_step_to_step.sweep.records import FINISHED
from transformers.file_utils import write_atomically

CURVES_CSV, CURVES_PNG = "curves.csv", "curves.png"
TRAIN_LOG_NAME = "train_log.jsonl"
CSV_COLUMNS = ("setting", "step", "loss_mean", "loss_min", "loss_max")


def read_losses(path):
    """{step: loss} of the training rows of one train_log.jsonl; None when a line is not a JSON object (then
    it says which file and line, and the run is left out of the curves rather than stop the report)."""
    losses = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                print(f"{path}:{number}: not a JSON line ({error.msg}); this run is left out of {CURVES_CSV}")
                return None
            if not isinstance(row, dict):
                print(f"{path}:{number}: not a JSON object; this run is left out of {CURVES_CSV}")
                return None
            loss = row.get("loss")
            if isinstance(loss, (int, float)) and isinstance(row.get("step"), int) and math.isfinite(loss):
                losses[row["step"]] = float(loss)  # a repeated step (a resumed run): the last one logged
    return losses


def aggregate(curves):
    """Rows (setting label, step, mean, min, max) from `curves`, a list of (Setting, {step: loss}) with one
    entry per run, in Setting order and then step order; each step over the runs of its setting that logged
    it. Worked example: setting 0 with runs {1: 0.9, 2: 0.7} and {1: 1.1, 2: 0.5} -> (0, 1, 1.0, 0.9, 1.1)
    and (0, 2, 0.6, 0.5, 0.7)."""
    by_setting = {}
    for setting, losses in curves:
        for step, loss in losses.items():
            by_setting.setdefault(setting, {}).setdefault(step, []).append(loss)
    return [(setting.label, step, statistics.fmean(values), min(values), max(values))
            for setting in sorted(by_setting) for step, values in sorted(by_setting[setting].items())]


def run_curves(document, output_dir):
    """(Setting, {step: loss}) for each finished run with a readable train_log.jsonl, and how many finished
    runs had none."""
    curves, missing = [], 0
    for record in document["runs"]:
        if record.get("status", FINISHED) != FINISHED or "output_dir" not in record:
            continue
        path = os.path.join(output_dir, record["output_dir"], TRAIN_LOG_NAME)
        if not os.path.isfile(path):
            missing += 1
            continue
        losses = read_losses(path)
        if losses:
            curves.append((parse_setting(record["setting"]), losses))
    return curves, missing


def write_curves(output_dir, document):
    """curves.csv and (with matplotlib) curves.png from the finished runs' train_log.jsonl. Returns the rows
    written ([] when no run logged a loss)."""
    curves, missing = run_curves(document, output_dir)
    if not curves:
        print(f"No run folder holds a {TRAIN_LOG_NAME} with training losses (written by run_classifier), so "
              f"there are no {CURVES_CSV} and {CURVES_PNG}")
        return []
    if missing:
        print(f"{missing} finished runs have no {TRAIN_LOG_NAME}: {CURVES_CSV} is over the other {len(curves)}")
    rows = aggregate(curves)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([label, step, repr(mean), repr(low), repr(high)] for label, step, mean, low, high in rows)
    write_atomically(os.path.join(output_dir, CURVES_CSV),
                     lambda temp: Path(temp).write_text(text.getvalue(), encoding="utf-8"))
    write_plot(os.path.join(output_dir, CURVES_PNG), document, rows, curves)
    return rows


def write_plot(path, document, rows, curves):
    """curves.png: per setting its mean loss over the steps, and a band from the lowest to the highest run."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    except ImportError:
        print(f"matplotlib is not installed: skipping {path} (pip install matplotlib, then rerun)")
        return False
    runs_per_setting = {}
    for setting, _ in curves:
        runs_per_setting[setting.label] = runs_per_setting.get(setting.label, 0) + 1
    figure = Figure(figsize=(7.5, 4.8), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    for label in dict.fromkeys(row[0] for row in rows):
        mine = [row for row in rows if row[0] == label]
        steps = [row[1] for row in mine]
        line, = axes.plot(steps, [row[2] for row in mine], linewidth=1.6,
                          label=f"{parse_setting(label).describe()} (mean of {runs_per_setting[label]} runs)")
        axes.fill_between(steps, [row[3] for row in mine], [row[4] for row in mine], color=line.get_color(),
                          alpha=0.18, linewidth=0)
    config = document["sweep"]
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss (mean over the last logging steps)")
    axes.set_title(f"Re-init sweep: training loss per setting, task {config['task_name']}; band: lowest to "
                   f"highest seed", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    write_atomically(path, lambda temp: figure.savefig(temp, format="png"))
    return True
