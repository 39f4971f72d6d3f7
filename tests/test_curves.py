"""The training curves (bert_read_step_to_step/curves.py): train_log.jsonl, the TensorBoard event files and
loss_curve.png. The event files are read with TensorBoard's own reader, and checked against train_log.jsonl,
the log lines and numbers computed here from the schedule. (The resumed curve is tested in test_resume.py,
next to the resumed weights; torchrun's single writer in test_run_classifier.py.)

Runs: MiniLM, 12 tweets, batch 2, max_seq_length 16, 4 optimizer steps, seeded.
"""
import json
import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from _classifier_runs import (balanced_tweets, common_args, one_thread_env, run_classifier_command, run_main,
                              write_generic_task)
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from bert_read_step_to_step.run_folder import RUN_FILES, set_previous_run_aside

LEARNING_RATE = 1e-4


def run_args(data, out, logging_steps, *extra):
    # 4 steps, warmup over the first 2: the lr after steps 1..4 is 1/2, 1, 1/2, 0 times the peak.
    return common_args(data, out, max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "2", "--per_gpu_eval_batch_size", "2", "--max_steps", "4",
        "--warmup_proportion", "0.5", "--learning_rate", str(LEARNING_RATE), "--save_steps", "0",
        "--logging_steps", str(logging_steps), "--seed", "5", *extra]


def history(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def scalars(folder):
    """{tag: [(step, value)]} of an event folder, as TensorBoard reads it (purges applied)."""
    reader = EventAccumulator(str(folder))
    reader.Reload()
    return {tag: [(event.step, event.value) for event in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_generic_task(tmp_path_factory.mktemp("curves_data"), balanced_tweets(12), balanced_tweets(3, start=8))


@pytest.fixture(scope="module")
def every_step(data, tmp_path_factory):
    """Logged at every step, evaluated at every logging step and at the end, the top layer re-initialized."""
    out = tmp_path_factory.mktemp("every_step") / "out"
    _, log = run_main(run_args(data, out, 1, "--do_eval", "--evaluate_during_training", "--reinit_layers", "1"))
    return out, log


def test_every_logging_step_is_a_row_and_an_event_with_the_same_numbers(every_step):
    out, log = every_step
    rows = history(out)
    train = [row for row in rows if "loss" in row]
    assert [row["step"] for row in train] == [1, 2, 3, 4]
    assert all(set(row) == {"step", "epoch", "loss", "learning_rate", "grad_norm"} for row in train)
    # The loss is the one the log line prints; the lr follows the warmup-then-decay schedule.
    assert [round(row["loss"], 4) for row in train] == [log.losses[step] for step in (1, 2, 3, 4)]
    assert [row["learning_rate"] for row in train] == pytest.approx([LEARNING_RATE * f for f in (0.5, 1, 0.5, 0)])
    # 12 examples in batches of 2: an epoch is 6 steps.
    assert [row["epoch"] for row in train] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6])
    assert all(row["grad_norm"] > 0 for row in train)

    events = scalars(out / "tensorboard")
    for key in ("loss", "learning_rate", "grad_norm"):
        assert [step for step, _ in events[f"train/{key}"]] == [1, 2, 3, 4]
        assert [value for _, value in events[f"train/{key}"]] == pytest.approx([row[key] for row in train],
                                                                               rel=1e-6)  # float32 in the file
    assert len([name for name in os.listdir(out / "tensorboard") if name.startswith("events.out")]) == 1


def test_each_evaluation_is_one_row_and_the_final_one_is_the_results_file(every_step):
    out, _ = every_step
    evals = [row for row in history(out) if any(key.startswith("eval_") for key in row)]
    # Steps 1..4 during training; the final evaluation scores the weights of step 4 again and is not doubled.
    assert [row["step"] for row in evals] == [1, 2, 3, 4]
    assert all(set(row) == {"step", "eval_acc"} for row in evals)  # never a bare "loss"
    final = json.loads((out / "eval_results.json").read_text())
    assert evals[-1]["eval_acc"] == final["acc"]
    events = scalars(out / "tensorboard")
    assert events["eval/acc"] == [(row["step"], pytest.approx(row["eval_acc"])) for row in evals]


def test_the_weight_change_of_the_reinitialized_and_loaded_modules_is_logged(every_step):
    out, _ = every_step
    report = json.loads((out / "weight_change.json").read_text())
    by_module = {row["module"]: row for row in report["modules"]}
    row = history(out)[-1]
    assert row["step"] == 4 and set(row["weight_change"]) == set(by_module)
    events = scalars(out / "tensorboard")
    # MiniLM has 6 layers: layer 5 was re-initialized (and the head is new), the rest were loaded.
    for tag, module in (("reinitialized/layer_5", "layer 5"), ("reinitialized/head", "head"),
                        ("loaded/layer_0", "layer 0")):
        assert events[f"weight_change/{tag}"] == [(4, pytest.approx(by_module[module]["relative_change"]))]
    assert "weight_change/loaded/layer_5" not in events


def test_the_picture_is_drawn_and_named_in_the_log(every_step):
    out, log = every_step
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [message for message in log.messages if message.startswith("Training curve")]
    assert lines == [f"Training curve (loss over steps, eval metrics on the right axis): {out / 'loss_curve.png'}"]


def test_the_loss_and_grad_norm_of_a_window_are_the_means_of_its_steps(data, every_step, tmp_path):
    out, _ = every_step
    run_main(run_args(data, tmp_path / "out", 2, "--reinit_layers", "1", "--logging_dir", tmp_path / "events"))
    single = [row for row in history(out) if "loss" in row]
    windows = [row for row in history(tmp_path / "out") if "loss" in row]
    assert [row["step"] for row in windows] == [2, 4]
    for window, (first, second) in zip(windows, [single[0:2], single[2:4]]):
        assert window["loss"] == pytest.approx((first["loss"] + second["loss"]) / 2, rel=1e-6)
        assert window["grad_norm"] == pytest.approx((first["grad_norm"] + second["grad_norm"]) / 2, rel=1e-6)
        assert window["learning_rate"] == second["learning_rate"]  # the lr at the logging step
    # --logging_dir: the event files go there, directly, and not into output_dir.
    assert any(name.startswith("events.out") for name in os.listdir(tmp_path / "events"))
    assert not (tmp_path / "out" / "tensorboard").exists()
    assert [step for step, _ in scalars(tmp_path / "events")["train/loss"]] == [2, 4]


def test_logging_steps_0_writes_no_curve_and_says_so_once(data, tmp_path):
    _, log = run_main(run_args(data, tmp_path / "out", 0))
    names = set(os.listdir(tmp_path / "out"))
    assert not names & {"train_log.jsonl", "loss_curve.png", "tensorboard"}
    said = [message for message in log.messages if "no training curve" in message]
    assert said == ["--logging_steps 0: no training curve (no train_log.jsonl, TensorBoard log or loss_curve.png)"]


def test_overwrite_output_dir_moves_the_old_history_away(tmp_path):
    for name in ("train_log.jsonl", "loss_curve.png"):
        (tmp_path / name).write_text("old")
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1.old").write_text("old")
    (tmp_path / "train.tsv").write_text("data, not the run's")
    assert {"train_log.jsonl", "loss_curve.png", "tensorboard"} <= set(RUN_FILES)
    set_previous_run_aside(str(tmp_path))
    assert set(os.listdir(tmp_path)) == {"train.tsv", ".previous-run"}


# Hides the tensorboard package from every import in the process, as if it were not installed.
HIDE_TENSORBOARD = """
import sys

class HideTensorBoard:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return None

sys.meta_path.insert(0, HideTensorBoard())
"""


def test_without_tensorboard_the_run_writes_the_history_and_the_picture_with_one_warning(data, tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_TENSORBOARD)
    env = dict(one_thread_env(), PYTHONPATH=str(hide))
    out = tmp_path / "out"
    proc = subprocess.run(run_classifier_command() + run_args(data, out, 2, "--do_eval", "--per_gpu_eval_batch_size",
                                                               "1"),
                          env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    warnings = [line for line in output.splitlines() if "TensorBoard cannot be imported" in line]
    assert len(warnings) == 1 and "pip install tensorboard" in warnings[0], output[-3000:]
    assert [row["step"] for row in history(out) if "loss" in row] == [2, 4]
    assert (out / "loss_curve.png").is_file()
    assert not (out / "tensorboard").exists()
    # The evaluation bar ends at 3/3 (3 dev examples, batch 1), not one short.
    assert "Evaluating final: 100%" in output and "3/3" in output, output[-3000:]


def test_tensorboard_is_not_imported_until_a_run_starts():
    code = "import sys, run_classifier; print(any(name.startswith('tensorboard') for name in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(os.path.dirname(run_classifier_command()[1])),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr[-2000:]


def test_a_resume_keeps_only_its_own_history_and_with_logging_steps_0_leaves_no_old_curve(tmp_path):
    """The folder's history of steps 1..12, events and picture, then a resume at step 10:
    from another folder's checkpoint the history starts empty (those rows are another run's), and with
    --logging_steps 0 no curve file is left for steps this run trains again."""
    from bert_read_step_to_step.curves import LOG_NAME, PLOT_NAME, TrainingCurves

    def old_run(folder):
        folder.mkdir()
        (folder / LOG_NAME).write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 13)))
        (folder / PLOT_NAME).write_bytes(b"png")
        (folder / "tensorboard").mkdir()
        (folder / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"events")
        return folder

    other = old_run(tmp_path / "other")
    with TrainingCurves(str(other), str(other / "tensorboard"), True, True, own_history=False) as curves:
        curves.start(10)
    assert (other / LOG_NAME).read_text() == ""

    quiet = old_run(tmp_path / "quiet")
    with TrainingCurves(str(quiet), str(quiet / "tensorboard"), True, False, own_history=True) as curves:
        curves.start(10)
    assert not (quiet / LOG_NAME).exists() and not (quiet / PLOT_NAME).exists()
    assert list((quiet / "tensorboard").iterdir()) == []
