"""The training curves of a run: TensorBoard event files, a JSON-lines history and a picture.

In:  run_classifier's --output_dir, --logging_dir and --logging_steps; then, as training goes, each logging
     step's numbers (mean loss of the window, learning rate, mean gradient norm, epoch), each evaluation's
     metrics and, at the end, the weight-change report (weight_change.py).
Out: three files, written by rank 0 only (under torchrun the other ranks hold a `TrainingCurves` that writes
     nothing, so there is one event file and one history, never interleaved lines):
    output_dir/train_log.jsonl   one JSON object a line, written and flushed as it happens, so that a killed
                                 run keeps its history. Rows, in the order they happened:
        {"step": 20, "epoch": 0.32, "loss": 0.93, "learning_rate": 9.1e-05, "grad_norm": 4.2}      training
        {"step": 20, "eval_acc": 0.61}                                                              evaluation
        {"step": 63, "weight_change": {"layer 4": {"relative_change": 0.71, "measured_from": "fresh init"}, ...}}
    LOGGING_DIR (default output_dir/tensorboard)   TensorBoard event files, directly in that folder:
        train/loss, train/learning_rate, train/grad_norm, eval/<metric>, and at the end
        weight_change/reinitialized/<module> and weight_change/loaded/<module>
    output_dir/loss_curve.png    the training loss over steps, the eval metrics on a second axis; drawn at
                                 the end of the run from train_log.jsonl, like weight_change.png

Reading them:  tensorboard --logdir OUTPUT_DIR/tensorboard    or    pandas.read_json(PATH, lines=True)

A resume continues the same curve. The history is cut back to the checkpoint's step first (a run killed at
step 12 and resumed from checkpoint-10 had logged steps 11 and 12, which the resumed run logs again), and the
event writer starts with a purge from step 0: TensorBoard's reader then drops what the earlier event files
hold, and the kept history is written again. So no step appears twice in either, and both hold the same rows.
A resume from another folder's checkpoint starts a new history at the checkpoint's step (the folder's own
train_log.jsonl, if any, belongs to another run); a resume with --logging_steps 0 removes the old curve files.

TensorBoard and matplotlib are imported only when a run starts / draws; without them the run trains anyway,
and says once, in a WARNING, what to install.
"""
import json
import logging
import os

from bert_read_step_to_step.weight_change import FROM_FRESH_INIT, MATPLOTLIB_MISSING
from transformers.file_utils import write_atomically

logger = logging.getLogger(__name__)

LOG_NAME, PLOT_NAME = "train_log.jsonl", "loss_curve.png"
DEFAULT_LOGGING_DIR = "tensorboard"  # inside output_dir, unless --logging_dir says otherwise
TENSORBOARD_MISSING = ("TensorBoard cannot be imported ({error}): no event files in {folder}; train_log.jsonl and "
                       "loss_curve.png are still written (install it with: pip install tensorboard)")


def logging_dir(args):
    """Where the event files go: --logging_dir, or the default folder inside output_dir."""
    return args.logging_dir or os.path.join(args.output_dir, DEFAULT_LOGGING_DIR)


def open_event_writer(folder, purge_step):
    """torch's SummaryWriter writing into `folder` itself (not a dated subfolder), or None when TensorBoard
    cannot be imported. torch.utils.tensorboard raises ImportError itself when the tensorboard package is
    missing or too old, so any ImportError counts as "not installed"."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        logger.warning(TENSORBOARD_MISSING.format(error=error, folder=folder))
        return None
    # purge_step: the reader discards every event at or after this step that an earlier writer in this
    # folder left: the steps a killed run logged past the checkpoint being resumed.
    return SummaryWriter(log_dir=folder, purge_step=purge_step)


def scalars_of(row):
    """{TensorBoard tag: value} of one history row: the same numbers under TensorBoard's names."""
    if "weight_change" in row:
        # Grouped by where a module started: drawn afresh (re-initialized, or new like the head) or loaded.
        return {f"weight_change/{'reinitialized' if change['measured_from'] == FROM_FRESH_INIT else 'loaded'}/"
                f"{module.replace(' ', '_')}": change["relative_change"]
                for module, change in row["weight_change"].items()}
    if "loss" in row:
        return {f"train/{key}": row[key] for key in ("loss", "learning_rate", "grad_norm")}
    return {f"eval/{key[len('eval_'):]}": value for key, value in row.items() if key.startswith("eval_")}


def read_history(path, up_to_step):
    """The rows of train_log.jsonl with step <= up_to_step. A line that is not JSON can only be the last one,
    cut short when the run writing it was killed: it is left out."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= up_to_step:
                rows.append(row)
    return rows


class TrainingCurves:
    """What one run writes about its curves. `keeps_files`: rank 0 of a training run, the one process that
    touches the curve files; `enabled`: that, with --logging_steps > 0 (else no row is written).
    `own_history`: the folder's train_log.jsonl is this run's past (a new run, or a resume from one of
    output_dir's own checkpoints) and is continued, not another run's."""

    def __init__(self, output_dir, events_dir, keeps_files, enabled, own_history):
        self.path = os.path.join(output_dir, LOG_NAME)
        self.events_dir, self.keeps_files = events_dir, keeps_files
        self.enabled, self.own_history = enabled, own_history
        self.file, self.writer = None, None
        self.evaluated_step = None  # the step of the last evaluation written

    @classmethod
    def for_run(cls, args, runtime, own_history):
        keeps_files = bool(args.do_train and runtime.is_main)
        if keeps_files and args.logging_steps == 0:
            logger.info("--logging_steps 0: no training curve (no %s, TensorBoard log or %s)", LOG_NAME, PLOT_NAME)
        return cls(args.output_dir, logging_dir(args), keeps_files, keeps_files and args.logging_steps > 0,
                   own_history)

    def start(self, step):
        """Open the history and the event writer at `step`: 0 for a new run, the checkpoint's step for a resume.
        The history keeps its rows up to `step` (rewritten whole, atomically); the rest is this run's."""
        if not self.keeps_files:
            return
        kept = read_history(self.path, step) if step and self.own_history and os.path.isfile(self.path) else []
        if step and not self.own_history:
            logger.info("Resuming from a checkpoint of another folder: %s starts at step %d (the steps before it "
                        "are in that run's own history)", self.path, step)
        # The weight change is written at the end of a run: a run that got there and is resumed anyway (from
        # its last checkpoint) writes its own again.
        kept = [row for row in kept if "weight_change" not in row]
        if not self.enabled:  # --logging_steps 0: no curve, and none left behind that this run trains over
            remove_curve_files(self.path, self.events_dir)
            return
        write_atomically(self.path, lambda temp: write_rows(temp, kept))
        self.file = open(self.path, "a", encoding="utf-8")
        self.evaluated_step = max((row["step"] for row in kept if is_eval(row)), default=None)
        # Purge from step 0 and write the kept history again: the event files then hold exactly the rows of
        # train_log.jsonl, whatever an earlier writer left in this folder (steps past the checkpoint, another
        # run's events, or nothing at all when --logging_dir changed on the resume).
        self.writer = open_event_writer(self.events_dir, purge_step=0)
        if self.writer is None:
            return
        logger.info("TensorBoard log in %s (see it with: tensorboard --logdir %s)", self.events_dir, self.events_dir)
        for row in kept:
            self.add_scalars(row)

    def log_train(self, step, epoch, loss, learning_rate, grad_norm):
        self.write({"step": step, "epoch": epoch, "loss": loss, "learning_rate": learning_rate,
                    "grad_norm": grad_norm})

    def log_eval(self, step, results):
        """An evaluation's metrics. The final evaluation of a run whose --evaluate_during_training already
        scored its last step scores the same weights again: that step is written once."""
        if step == self.evaluated_step:
            return
        self.evaluated_step = step
        self.write({"step": step, **{f"eval_{name}": value for name, value in results.items()}})

    def log_weight_change(self, step, report):
        """weight_change.json's relative change of each module, in TensorBoard grouped by where it started."""
        measured = [row for row in report["modules"] if row["relative_change"] is not None]
        self.write({"step": step, "weight_change": {row["module"]: {"relative_change": row["relative_change"],
                                                                     "measured_from": row["measured_from"]}
                                                    for row in measured}})

    def write(self, row):
        if self.file is None:
            return
        # One line, flushed now: a run killed a moment later still has every row up to here.
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        self.add_scalars(row)

    def add_scalars(self, row):
        if self.writer is not None:
            for tag, value in scalars_of(row).items():
                if value is not None:  # grad_norm of a window fp16's scaler skipped whole
                    self.writer.add_scalar(tag, value, row["step"])
            self.writer.flush()

    def __enter__(self):
        return self

    def __exit__(self, error_type, *exc):
        """Close the files; draw loss_curve.png when the run went through (a failed run keeps its history)."""
        if self.file is None:
            return
        self.file.close()
        if self.writer is not None:
            self.writer.close()
        self.file = self.writer = None
        if error_type is None:
            self.draw()

    def draw(self):
        """loss_curve.png from the whole history: a resumed run's picture holds the interrupted run's steps too."""
        png = os.path.join(os.path.dirname(self.path), PLOT_NAME)
        rows = read_history(self.path, float("inf"))
        figure = plot_history(rows, f"Training curve: {os.path.dirname(self.path)}")
        if figure is None:
            logger.warning(MATPLOTLIB_MISSING.format(path=png))
            return
        figure.savefig(png)
        logger.info("Training curve (loss over steps%s): %s", ", eval metrics on the right axis"
                    if any(is_eval(row) for row in rows) else "", png)


def remove_curve_files(path, events_dir):
    """Remove an earlier run's train_log.jsonl, loss_curve.png and event files (a resume with --logging_steps 0)."""
    for name in (path, os.path.join(os.path.dirname(path), PLOT_NAME)):
        if os.path.isfile(name):
            os.remove(name)
    if os.path.isdir(events_dir):
        for name in os.listdir(events_dir):
            if name.startswith("events.out.tfevents."):
                os.remove(os.path.join(events_dir, name))


def write_rows(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def is_eval(row):
    return any(key.startswith("eval_") for key in row)


def plot_history(rows, title):
    """A matplotlib Figure: training loss over steps (left axis) and every eval metric (right axis), or None
    when matplotlib is not installed (imported only here, when asked)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    except ImportError:
        return None
    figure = Figure(figsize=(7.0, 4.0), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    train = [row for row in rows if "loss" in row]
    axes.plot([row["step"] for row in train], [row["loss"] for row in train], marker=".", color="tab:blue",
              label="training loss (mean of the window)")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss")
    handles = axes.get_lines()
    evals = [row for row in rows if is_eval(row)]
    metrics = sorted({key for row in evals for key in row if key.startswith("eval_")})
    if metrics:
        right = axes.twinx()
        for metric, color in zip(metrics, ("tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")):
            points = [row for row in evals if metric in row]
            handles += right.plot([row["step"] for row in points], [row[metric] for row in points], marker="o",
                                  color=color, label=metric)
        right.set_ylabel("eval metric")
    axes.legend(handles=handles, labels=[line.get_label() for line in handles], fontsize=8, loc="best")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    return figure
