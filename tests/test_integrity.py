"""Every number a run reports is true, or the run fails loudly (issue: integrity).

A run that diverges stops with exit 3 and writes no NaN weights; a checkpoint is verified by its manifest and its
optimizer state by shape before a resume uses it; a resume from another model, tokenizer or label list is refused;
a full disk is one line and leaves the last checkpoint whole; training_args.json keeps no URL secret and records
the run's warnings. Runs are MiniLM on a few tweets, max_seq_length 16.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _classifier_runs import balanced_tweets, common_args, one_thread_env, run_classifier_command, run_main
from _classifier_runs import write_generic_task
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import REPO_ROOT, minilm_dir
from bert_read_step_to_step import checkpoints
from bert_read_step_to_step.checkpoints import (MANIFEST_NAME, TRAIN_STATE_NAME, CheckpointDamaged, TrainingDiverged,
                                                TrainState, refuse_non_finite_weights)
from bert_read_step_to_step.optimization import optimizer_step
from bert_read_step_to_step.run_folder import args_to_dict
from bert_read_step_to_step.runtime import Runtime
from transformers import BertConfig, BertForSequenceClassification
from transformers.file_utils import DiskFullError, UserError, replace_path


def run_args(data, out, *extra):
    return common_args(data, out, max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "4", "--max_steps", "3", "--save_steps", "1",
        "--logging_steps", "1", "--learning_rate", "1e-4", "--seed", "3", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("integrity_data")
    write_generic_task(folder, balanced_tweets(12), balanced_tweets(3, start=12))
    return folder


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A finished run with checkpoint-1..3, which the resume tests copy and damage."""
    out = tmp_path_factory.mktemp("trained") / "out"
    run_main(run_args(data, out))
    yield out
    shutil.rmtree(out.parent, ignore_errors=True)


def cli(argv, cwd=REPO_ROOT):
    return subprocess.run(run_classifier_command() + [str(arg) for arg in argv], cwd=cwd, env=one_thread_env(),
                          capture_output=True, text=True, timeout=600)


# ---- 1. a run that diverges ---------------------------------------------------------------------------------

def test_a_diverged_run_exits_3_in_one_line_and_leaves_no_non_finite_weights(data, tmp_path):
    out = tmp_path / "out"
    proc = cli(run_args(data, out, "--learning_rate", "1e6", "--max_steps", "6", "--do_eval"))
    assert proc.returncode == 3, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("run_classifier.py: error: training diverged") and "--learning_rate" in last
    assert "Traceback" not in proc.stderr
    assert not (out / "model.safetensors").exists() and not (out / "eval_results.txt").exists()
    # Whatever checkpoints were written before the divergence hold finite weights, and load.
    saved = sorted(out.glob("checkpoint-*"))
    for checkpoint in saved:
        weights = load_file(str(checkpoint / "model.safetensors"))
        assert all(bool(torch.isfinite(tensor).all()) for tensor in weights.values()), checkpoint
        BertForSequenceClassification.from_pretrained(str(checkpoint))


def test_weights_that_hold_nan_are_refused_before_saving(tmp_path):
    model = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=16, num_labels=2))
    refuse_non_finite_weights(model, 5, str(tmp_path))  # finite: nothing happens
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"classifier\.weight.*not saved to") as error:
        refuse_non_finite_weights(model, 5, str(tmp_path))
    assert error.value.exit_code == 3 and os.listdir(tmp_path) == []


def tiny_state(scaler=None):
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return TrainState(layer, optimizer, scheduler, scaler), layer


def test_non_finite_gradients_stop_training_before_the_step_is_applied():
    state, layer = tiny_state()
    before = layer.weight.detach().clone()
    layer(torch.tensor([[float("inf"), 1.0]])).sum().backward()
    with pytest.raises(TrainingDiverged, match="at step 1: loss 0.5, gradient norm"):
        optimizer_step(state, argparse.Namespace(max_grad_norm=1.0, learning_rate=0.1), 0.5)
    assert torch.equal(layer.weight, before) and state.global_step == 0


def test_a_non_finite_loss_stops_training_even_under_a_grad_scaler():
    state, layer = tiny_state(scaler=torch.amp.GradScaler("cpu"))
    state.scaler.scale(layer(torch.ones(1, 2)).sum()).backward()
    with pytest.raises(TrainingDiverged, match="loss nan"):
        optimizer_step(state, argparse.Namespace(max_grad_norm=1.0, learning_rate=0.1), math.nan)


def test_a_step_the_grad_scaler_skips_is_not_a_divergence():
    # fp16's GradScaler meets inf gradients while it searches for its scale: it skips that step and goes on.
    state, layer = tiny_state(scaler=torch.amp.GradScaler("cpu"))
    before = layer.weight.detach().clone()
    state.scaler.scale(layer(torch.tensor([[float("inf"), 1.0]])).sum()).backward()
    grad_norm = optimizer_step(state, argparse.Namespace(max_grad_norm=1.0, learning_rate=0.1), 0.5)
    assert torch.equal(layer.weight, before)  # skipped by the scaler, and no error
    assert grad_norm is None and state.global_step == 1  # no norm for the curves; the step still counts


def test_a_window_of_steps_the_scaler_skipped_has_no_gradient_norm_and_the_next_one_is_finite():
    """An inf norm must not reach the window sums: the first window averages its finite norms only, the
    second (all skipped) has none, and the third is the mean of its own steps, not inf - inf."""
    from run_classifier import LossLog
    losses = LossLog()
    for step_loss, grad_norm in ((1.0, 2.0), (3.0, None), (0.5, 4.0)):
        losses.add(step_loss, grad_norm)
    assert losses.window() == (1.5, 3.0, 3)
    losses.add(2.0, None)
    assert losses.window() == (2.0, None, 1)
    losses.add(1.0, 5.0)
    assert losses.window() == (1.0, 5.0, 1)


# ---- 3. training_state.pt is verified before use ------------------------------------------------------------

def damaged_copy(trained, tmp_path, damage):
    out = tmp_path / "out"
    checkpoint = out / "checkpoint-2"
    shutil.copytree(trained / "checkpoint-2", checkpoint)
    damage(checkpoint)
    checkpoints._verified.clear()  # a new process would verify again
    return out, checkpoint


def resume_error(data, out, checkpoint):
    with pytest.raises(UserError) as error:
        run_main(run_args(data, out, "--resume_from_checkpoint", checkpoint))
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_checkpoint_records_every_file_in_its_manifest(trained):
    manifest = json.loads((trained / "checkpoint-1" / MANIFEST_NAME).read_text())["files"]
    assert set(manifest) == set(os.listdir(trained / "checkpoint-1")) - {MANIFEST_NAME}
    assert manifest[TRAIN_STATE_NAME]["size"] == (trained / "checkpoint-1" / TRAIN_STATE_NAME).stat().st_size


def truncate(checkpoint):
    path = checkpoint / TRAIN_STATE_NAME
    path.write_bytes(path.read_bytes()[:1000])


def flip_a_bit(checkpoint):
    path = checkpoint / TRAIN_STATE_NAME
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def remove_the_vocab(checkpoint):
    os.remove(checkpoint / "vocab.txt")


@pytest.mark.parametrize("damage, expected", [(truncate, "training_state.pt has 1000 bytes"),
                                              (flip_a_bit, "training_state.pt does not hold the bytes"),
                                              (remove_the_vocab, "vocab.txt is missing")])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(data, trained, tmp_path, damage, expected):
    out, checkpoint = damaged_copy(trained, tmp_path, damage)
    last = resume_error(data, out, checkpoint)
    assert expected in last and f"checkpoint {checkpoint} is damaged" in last


def rewrite_state(checkpoint, change, keep_manifest_true=True):
    path = checkpoint / TRAIN_STATE_NAME
    saved = torch.load(path, weights_only=True)
    change(saved)
    torch.save(saved, path)
    if keep_manifest_true:
        checkpoints.write_manifest(str(checkpoint))  # a state that is not damaged, but wrong for this model


def test_an_optimizer_state_of_the_wrong_shape_is_refused_not_a_crash(data, trained, tmp_path):
    def shrink_a_moment(saved):
        first = saved["optimizer"]["state"][0]
        first["exp_avg"] = first["exp_avg"][:5].clone()

    out, checkpoint = damaged_copy(trained, tmp_path, lambda folder: rewrite_state(folder, shrink_a_moment))
    # In a process of its own: before the check, the fused AdamW read past the short moment (exit 139).
    proc = cli(run_args(data, out, "--resume_from_checkpoint", checkpoint))
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "training_state.pt: optimizer state 'exp_avg' of" in last and "has shape [5" in last


def test_an_optimizer_state_of_another_structure_is_one_error_not_a_traceback():
    """A checkpoint written before manifests is read unverified, so its optimizer state can be anything the
    unpickler allows: groups that are not tables, a parameter's state that is a list. Each is CheckpointDamaged."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    good = {"param_groups": [{"params": [0, 1]}], "state": {0: {"exp_avg": torch.zeros(2, 3)}}}
    checkpoints.check_optimizer_state(good, optimizer, model, "state.pt")  # fits: no error
    for odd in ({"param_groups": ["lr"], "state": {}}, {"param_groups": [{"params": 2}], "state": {}},
                {"param_groups": [{"params": [0, 1]}], "state": []},
                {"param_groups": [{"params": [0, 1]}], "state": {0: [torch.zeros(2, 3)]}},
                {"param_groups": [{"params": [0, 1]}], "state": {1: {"exp_avg": torch.zeros(3)}}}):
        with pytest.raises(CheckpointDamaged, match="state.pt: "):
            checkpoints.check_optimizer_state(odd, optimizer, model, "state.pt")


def test_a_checkpoint_without_a_manifest_resumes_with_a_warning(data, trained, tmp_path):
    out, checkpoint = damaged_copy(trained, tmp_path, lambda folder: os.remove(folder / MANIFEST_NAME))
    results, log = run_main(run_args(data, out, "--resume_from_checkpoint", checkpoint))
    assert any("has no manifest.json" in message and "unverified" in message for message in log.messages)
    assert (out / "model.safetensors").exists()


# ---- 7. resume identity -----------------------------------------------------------------------------------

def copy_of_the_model(tmp_path, change=None):
    folder = tmp_path / "model-copy"
    shutil.copytree(minilm_dir(), folder)
    if change:
        change(folder)
    return folder


def resume_error_of(argv):
    with pytest.raises(UserError) as error:
        run_main(argv)
    return str(error.value)


def test_a_resume_from_other_weights_is_refused_naming_them(data, trained, tmp_path):
    def other_weights(folder):
        from safetensors.torch import save_file
        weights = load_file(str(folder / "model.safetensors"))
        name = sorted(weights)[0]
        weights[name] = weights[name] + 1
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})

    model = copy_of_the_model(tmp_path, other_weights)
    argv = run_args(data, tmp_path / "out", "--resume_from_checkpoint", trained / "checkpoint-2")
    argv[argv.index("--model_name_or_path") + 1] = str(model)
    last = resume_error_of(argv)
    assert "would not continue that training" in last and "model weights {model.safetensors:" in last
    assert f"{str(model)!r} now" in last


def test_a_moved_model_folder_with_the_same_weights_is_the_same_model(data, trained, tmp_path):
    model = copy_of_the_model(tmp_path)
    argv = run_args(data, tmp_path / "out", "--resume_from_checkpoint", trained / "checkpoint-2")
    argv[argv.index("--model_name_or_path") + 1] = str(model)
    run_main(argv)
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_a_resume_with_another_tokenizer_vocabulary_is_refused(data, trained, tmp_path):
    def other_vocab(folder):  # the same size, one token spelled otherwise
        vocab = folder / "vocab.txt"
        vocab.write_text(vocab.read_text(encoding="utf-8").replace("[unused0]\n", "[unused-zero]\n", 1),
                         encoding="utf-8")

    model = copy_of_the_model(tmp_path, other_vocab)
    argv = run_args(data, tmp_path / "out", "--resume_from_checkpoint", trained / "checkpoint-2",
                    "--tokenizer_name", model)
    assert "tokenizer files {" in resume_error_of(argv)


# ---- 6. a full disk -----------------------------------------------------------------------------------------

FULL_DISK_DRIVER = """
import errno, sys
sys.path.insert(0, {repo!r})
import torch
import run_classifier
from transformers.file_utils import run_entry_point

real_save = torch.save

def save_or_run_out_of_space(obj, path, *args, **kwargs):
    if "checkpoint-2" in str(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    return real_save(obj, path, *args, **kwargs)

torch.save = save_or_run_out_of_space
run_entry_point(run_classifier.main, "run_classifier.py", sys.argv[1:])
"""


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_last_one(data, tmp_path):
    driver, out = tmp_path / "full_disk_driver.py", tmp_path / "out"
    driver.write_text(FULL_DISK_DRIVER.format(repo=str(REPO_ROOT)))
    proc = subprocess.run([sys.executable, str(driver)] + [str(arg) for arg in run_args(data, out)],
                          cwd=tmp_path, env=one_thread_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"run_classifier.py: error: no space left on device: writing {out / 'checkpoint-2'} needs")
    assert "Traceback" not in proc.stderr
    names = set(os.listdir(out))
    assert "checkpoint-1" in names and "checkpoint-2" not in names and not (out / "model.safetensors").exists()
    assert not [name for name in names if name.startswith(".checkpoint-2")]  # the half-written folder is gone
    checkpoints._verified.clear()
    checkpoints.verify_checkpoint(str(out / "checkpoint-1"))  # whole, by its manifest


def test_disk_full_error_names_the_path_and_bytes(tmp_path):
    from transformers.file_utils import disk_full_error
    error = disk_full_error(str(tmp_path / "model.safetensors"), 1234)
    assert isinstance(error, DiskFullError) and isinstance(error, UserError)
    assert f"writing {tmp_path / 'model.safetensors'} needs 1,234 bytes" in str(error)


# ---- records: secrets and warnings ------------------------------------------------------------------------

def test_training_args_keep_no_url_secret():
    args = argparse.Namespace(model_name_or_path="http://user:s3cret@127.0.0.1:8000/bert/?sig=abc",
                              tokenizer_name="https://host/vocab/?key=xyz", config_name="")
    record = args_to_dict(args, Runtime(device=torch.device("cpu"), n_gpu=0, rank=0, world_size=1, local_rank=-1,
                                        precision="fp32"))
    text = json.dumps(record)
    assert "s3cret" not in text and "sig=abc" not in text and "xyz" not in text and "user" not in text
    assert record["model_name_or_path"] == "http://<redacted>@127.0.0.1:8000/bert/?<redacted>"


def test_a_training_set_smaller_than_one_batch_is_a_warning_in_the_record(tmp_path):
    data = tmp_path / "data"
    write_generic_task(data, balanced_tweets(3), balanced_tweets(3, start=3))
    out = tmp_path / "out"
    argv = common_args(data, out, max_seq_length=16) + ["--do_train", "--per_gpu_train_batch_size", "8",
                                                        "--max_steps", "1", "--save_steps", "0"]
    _, log = run_main(argv)
    record = json.loads((out / "training_args.json").read_text())
    assert len(record["warnings"]) == 1 and "only 3 training example(s), fewer than one batch of 8" in \
        record["warnings"][0]
    assert any("fewer than one batch" in message for message in log.messages)


# ---- 4. overwrite means overwrite ---------------------------------------------------------------------------

def test_overwrite_leaves_nothing_of_the_old_run_and_scores_only_this_runs_checkpoints(data, trained, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    (out / "test_predictions.tsv").write_text("old\n")
    (out / "test_results.txt").write_text("acc = 0.99\n")
    (out / "my_notes.txt").write_text("not written by a run: stays\n")
    results, _ = run_main(run_args(data, out, "--overwrite_output_dir", "--max_steps", "1", "--save_steps", "0",
                                   "--do_eval", "--eval_all_checkpoints"))
    assert set(results) == {"final"}  # the old run's checkpoint-1..3 are not scored as this run's
    names = set(os.listdir(out))
    assert not [name for name in names if name.startswith(("checkpoint-", "test_", ".previous-run"))]
    assert "my_notes.txt" in names and "eval_results.txt" in names
    assert json.loads((out / "training_args.json").read_text())["max_steps"] == 1


def old_run(folder):
    """A finished run's files as a run of this project leaves them, and one file it did not write."""
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoint-4" / "model.safetensors").write_text("old weights")
    for name in ("model.safetensors", "config.json", "training_args.json", "test_predictions.tsv"):
        (folder / name).write_text(f"old {name}")
    (folder / "train.tsv").write_text("data, not ours")
    return {path.relative_to(folder): path.read_text() for path in folder.rglob("*") if path.is_file()}


def files_of(folder):
    return {path.relative_to(folder): path.read_text() for path in folder.rglob("*") if path.is_file()}


def test_a_run_killed_before_its_first_result_gives_the_old_run_back(tmp_path):
    from bert_read_step_to_step.run_folder import recover_previous_run, set_previous_run_aside
    before = old_run(tmp_path)
    set_previous_run_aside(str(tmp_path))
    assert set(os.listdir(tmp_path)) == {".previous-run", "train.tsv"}
    (tmp_path / "training_args.json").write_text("the new run's record")  # ... then the kill
    recover_previous_run(str(tmp_path))
    assert files_of(tmp_path) == before


def test_a_run_killed_while_moving_the_old_run_aside_gives_it_back_whole(tmp_path):
    from bert_read_step_to_step.run_folder import MOVING_ASIDE, recover_previous_run
    before = old_run(tmp_path)
    moving = tmp_path / MOVING_ASIDE
    moving.mkdir()
    replace_path(str(tmp_path / "checkpoint-4"), str(moving / "checkpoint-4"))  # ... and the kill comes here
    recover_previous_run(str(tmp_path))
    assert files_of(tmp_path) == before


def test_a_run_killed_after_its_first_result_keeps_only_its_own_files(tmp_path):
    from bert_read_step_to_step.run_folder import recover_previous_run, set_previous_run_aside
    old_run(tmp_path)
    set_previous_run_aside(str(tmp_path))
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-1" / "model.safetensors").write_text("new weights")
    recover_previous_run(str(tmp_path))
    assert files_of(tmp_path) == {Path("checkpoint-1/model.safetensors"): "new weights",
                                  Path("train.tsv"): "data, not ours"}


def test_resuming_from_inside_the_folder_being_overwritten_is_refused(data, trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(run_args(data, trained, "--overwrite_output_dir", "--resume_from_checkpoint",
                          trained / "checkpoint-2"))
    assert exit_info.value.code == 2
    assert "lies inside --output_dir, which --overwrite_output_dir replaces" in capsys.readouterr().err
    assert (trained / "checkpoint-2" / TRAIN_STATE_NAME).exists()
