"""Exact resume after a crash. A real process is killed with SIGKILL (no handler runs, nothing is flushed)
right after a checkpoint, or in the middle of writing one; the run resumed from the last whole checkpoint
must end with weights bit-identical to a run that was never stopped.

All runs here: MiniLM with its dropout on, 18 tweets, batch 2 with gradient accumulation 2, so an epoch
is 4 optimizer steps (the 9th batch, a partial accumulation group, is left out); 6 steps in all, a
checkpoint every 2. Checkpoint 2 lies inside epoch 1, checkpoint 4 at its very end, and both resumes
then cross into epoch 2.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from _classifier_runs import (assert_same_weights, balanced_tweets, common_args, one_thread_env, run_classifier_command,
                              run_main, write_generic_task)
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import REPO_ROOT, minilm_dir
from transformers import BertConfig, BertForSequenceClassification
from transformers.file_utils import current_umask

CHECKPOINT_FILES = {"model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json",
                    "training_state.pt", "training_args.json"}


def run_args(data, out):
    return common_args(data, out, max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "2", "--gradient_accumulation_steps", "2",
        "--max_steps", "6", "--save_steps", "2", "--logging_steps", "1", "--learning_rate", "1e-4",
        "--seed", "7"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume_data")
    write_generic_task(folder, balanced_tweets(18), balanced_tweets(3, start=6))
    return folder


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """The reference: the same run, never stopped."""
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    _, log = run_main(run_args(data, out))
    yield out, log.losses
    shutil.rmtree(out.parent)  # checkpoints are large (optimizer state): do not leave them in /tmp


@pytest.fixture
def scratch(tmp_path):
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def start_run(command, log_path):
    log = open(log_path, "wb")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=one_thread_env(), stdout=log, stderr=subprocess.STDOUT), log


def kill_when(proc, log, log_path, ready, timeout=300):
    """SIGKILL `proc` as soon as `ready()` is true."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc={proc.returncode}) before the moment to kill it:\n"
                            + log_path.read_text(errors="replace")[-3000:])
            if time.monotonic() > deadline:
                pytest.fail("timed out waiting for the moment to kill the run")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL


def history(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def curve(out):
    """{tag: [(step, value)]} of output_dir/tensorboard as TensorBoard reads it (purge steps applied)."""
    reader = EventAccumulator(str(out / "tensorboard"))
    reader.Reload()
    return {tag: [(event.step, event.value) for event in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def assert_same_curve(out, reference):
    """The resumed run's train_log.jsonl and TensorBoard curve are the uninterrupted run's, each step once."""
    assert history(out) == history(reference)
    assert [row["step"] for row in history(out) if "loss" in row] == [1, 2, 3, 4, 5, 6]
    resumed, uninterrupted = curve(out), curve(reference)
    assert [step for step, _ in resumed["train/loss"]] == [1, 2, 3, 4, 5, 6]
    assert resumed == uninterrupted


def test_the_runs_have_dropout_on_and_the_checkpoints_hold_the_whole_state(uninterrupted):
    out, losses = uninterrupted
    config = BertConfig.from_pretrained(str(minilm_dir()))
    assert config.hidden_dropout_prob > 0 and config.attention_probs_dropout_prob > 0
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert {"checkpoint-2", "checkpoint-4", "checkpoint-6"} <= set(os.listdir(out))
    checkpoint = out / "checkpoint-4"
    assert CHECKPOINT_FILES <= set(os.listdir(checkpoint))
    # Written as a private temporary folder, renamed into place with the permissions of any other folder.
    umask = current_umask()
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o777 & ~umask
    # Plain tensors and containers: loadable without unpickling any code.
    state = torch.load(checkpoint / "training_state.pt", weights_only=True)
    assert (state["global_step"], state["epoch"], state["batches_done_in_epoch"]) == (4, 0, 8)
    assert len(state["rng"]) == 1 and {"python", "numpy", "torch"} <= set(state["rng"][0])  # one per process
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 4
    assert state["scaler"] is None  # no --fp16
    # The weights at step 4 are neither the start nor the end.
    assert not torch.equal(BertForSequenceClassification.from_pretrained(str(checkpoint)).classifier.weight,
                           BertForSequenceClassification.from_pretrained(str(out)).classifier.weight)


def test_killed_right_after_a_checkpoint_resumes_bit_identical(data, uninterrupted, scratch):
    reference, reference_losses = uninterrupted
    out, log_path = scratch / "out", scratch / "killed.log"
    proc, log = start_run(run_classifier_command() + run_args(data, out), log_path)
    # checkpoint-4 appears in one rename, whole: kill the moment it is there.
    kill_when(proc, log, log_path, ready=lambda: (out / "checkpoint-4").is_dir())
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint-6").exists()

    # Resume into the same output_dir (allowed without --overwrite_output_dir when resuming).
    _, resumed = run_main(run_args(data, out) + ["--resume_from_checkpoint", out / "checkpoint-4"])
    assert any(message.startswith("Resumed from") and message.endswith("at step 4") for message in resumed.messages)
    # Only steps 5 and 6 were run, with the same losses as the uninterrupted run: the same batches and the
    # same dropout masks.
    assert resumed.losses == {step: reference_losses[step] for step in (5, 6)}
    assert_same_weights(out, reference)
    assert_same_curve(out, reference)


@pytest.mark.parametrize("checkpoint", ["checkpoint-4", "checkpoint-6"])
def test_a_resume_into_a_log_that_went_past_the_checkpoint_continues_the_same_curve(data, uninterrupted, scratch,
                                                                                     checkpoint):
    # What a run killed at its very end leaves: its history and event file run to step 6 and hold the weight
    # change. Resumed from checkpoint-4, steps 5 and 6 are trained again; from checkpoint-6, none, and the end
    # of the run (the weight change) is written again.
    reference, _ = uninterrupted
    out = scratch / "out"
    out.mkdir()
    shutil.copytree(reference / checkpoint, out / checkpoint)
    shutil.copytree(reference / "tensorboard", out / "tensorboard")
    shutil.copy(reference / "train_log.jsonl", out / "train_log.jsonl")
    # ... and half a line: the kill came while a row was being written.
    with open(out / "train_log.jsonl", "a") as log:
        log.write('{"step": 7, "epo')
    run_main(run_args(data, out) + ["--resume_from_checkpoint", out / checkpoint])
    # What was logged again is there once.
    assert_same_curve(out, reference)
    assert_same_weights(out / "checkpoint-6", reference / "checkpoint-6")


# Runs run_classifier.main, but hangs in the middle of writing checkpoint-4 (after its training state,
# before its arguments file and the rename), and says so through a marker file: the test kills it then.
SLOW_SAVE_DRIVER = """
import os, sys, time
sys.path.insert(0, {repo!r})
import torch
import run_classifier

real_save = torch.save

def save_then_hang(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    folder = os.path.basename(os.path.dirname(os.fspath(f))) if isinstance(f, (str, os.PathLike)) else ""
    if folder.startswith(".checkpoint-4-"):
        open({marker!r}, "w").close()
        time.sleep(600)

torch.save = save_then_hang
run_classifier.main(sys.argv[1:])
"""


def test_killed_while_saving_leaves_the_previous_checkpoint_whole(data, uninterrupted, scratch):
    reference, _ = uninterrupted
    out, log_path, marker = scratch / "out", scratch / "killed.log", scratch / "saving-checkpoint-4"
    driver = scratch / "slow_save_driver.py"
    driver.write_text(SLOW_SAVE_DRIVER.format(repo=str(REPO_ROOT), marker=str(marker)))
    proc, log = start_run([sys.executable, str(driver)] + run_args(data, out), log_path)
    kill_when(proc, log, log_path, ready=marker.exists)

    # What the kill left: checkpoint-2 whole, no checkpoint-4, and a half-written hidden folder.
    names = set(os.listdir(out))
    assert "checkpoint-2" in names and "checkpoint-4" not in names
    stray = [name for name in names if name.startswith(".checkpoint-4-")]
    assert len(stray) == 1 and "training_args.json" not in os.listdir(out / stray[0])
    assert CHECKPOINT_FILES <= set(os.listdir(out / "checkpoint-2"))
    model, info = BertForSequenceClassification.from_pretrained(str(out / "checkpoint-2"), output_loading_info=True)
    assert info.missing_keys == [] and info.unexpected_keys == []
    assert torch.load(out / "checkpoint-2" / "training_state.pt", weights_only=True)["global_step"] == 2

    # Resume from checkpoint-2; --eval_all_checkpoints scores checkpoint-N folders and passes over the stray one.
    results, _ = run_main(run_args(data, out) + ["--resume_from_checkpoint", out / "checkpoint-2",
                                                 "--do_eval", "--eval_all_checkpoints"])
    assert set(results) == {"final", "checkpoint-2", "checkpoint-4", "checkpoint-6"}
    assert_same_weights(out, reference)


def test_resume_from_a_folder_that_is_not_a_checkpoint_is_refused(data, scratch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(run_args(data, scratch / "out") + ["--resume_from_checkpoint", minilm_dir()])
    assert exit_info.value.code == 2
    assert "no training_state.pt there" in capsys.readouterr().err
    assert not (scratch / "out").exists()
