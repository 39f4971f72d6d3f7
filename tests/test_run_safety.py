"""Run safety: one run owns an output folder, records do not overwrite each other, a resume continues the same
training or is refused, every flag is checked before a file is written, results land where the path says,
writes are durable, and a user error is one line. Runs are MiniLM, max_seq_length 16, one or two steps."""
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import run_classifier
from _classifier_runs import (T, balanced_tweets, common_args, one_thread_env, run_classifier_command, run_main,
                              write_generic_task, write_lines)
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import REPO_ROOT
from bert_read_step_to_step.features import FeatureDataset, InputFeatures
from bert_read_step_to_step.run_folder import LOCK_NAME
from bert_read_step_to_step.runtime import Runtime
from transformers import BertConfig, BertForSequenceClassification
from transformers.file_utils import UserError, run_entry_point, write_folder_atomically


def snapshot(folder):
    return {path.relative_to(folder): (path.stat().st_mtime_ns, path.read_bytes() if path.is_file() else None)
            for path in sorted(Path(folder).rglob("*"))}


def train_args(data, out, *extra):
    return common_args(data, out, max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "2", "--max_steps", "2", "--save_steps", "1",
        "--learning_rate", "1e-4", "--seed", "3", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("safety_data")
    return write_generic_task(folder, balanced_tweets(6), balanced_tweets(3, start=6))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A finished 2-step training run with checkpoint-1 and checkpoint-2, in a folder named .../Rx1."""
    out = tmp_path_factory.mktemp("runs") / "Rx1"
    run_main(train_args(data, out, "--do_eval"))
    yield out
    shutil.rmtree(out.parent)


# ---- output_dir: records and results ------------------------------------------------------------------------

def test_results_go_where_the_path_logic_says_not_where_a_string_prefix_does(data, trained):
    # output_dir .../Rx is a string prefix of the model folder .../Rx1, but the model is not inside it.
    out, before = trained.parent / "Rx", snapshot(trained)
    run_main(common_args(data, out, max_seq_length=16) + ["--do_eval"] +
             ["--model_name_or_path", trained])
    assert (out / "eval_results.json").is_file()
    assert snapshot(trained) == before
    shutil.rmtree(out)


def test_eval_only_into_a_trained_folder_keeps_the_training_records(data, trained):
    records = {name: (trained / name).read_bytes() for name in ("training_args.json", "reinit_keys.json")}
    run_main(common_args(data, trained, max_seq_length=16) + ["--model_name_or_path", trained, "--do_eval"])
    assert {name: (trained / name).read_bytes() for name in records} == records
    assert json.loads((trained / "training_args.json").read_text())["do_train"] is True
    eval_record = json.loads((trained / "eval_args.json").read_text())
    assert eval_record["do_train"] is False and eval_record["model_name_or_path"] == str(trained)
    assert not (trained / "predict_args.json").exists()


HOLD_LOCK = """
import sys, time, types
sys.path.insert(0, {repo!r})
from bert_read_step_to_step.run_folder import output_dir_lock
from bert_read_step_to_step.runtime import setup_device
runtime = setup_device(types.SimpleNamespace(local_rank=-1, no_cuda=True))
with output_dir_lock(types.SimpleNamespace(output_dir=sys.argv[1]), runtime):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_busy_output_dir_is_refused_and_a_dead_holder_is_taken_over(data, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.format(repo=str(REPO_ROOT)), str(out)],
                              stdout=subprocess.PIPE, text=True, env=one_thread_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        eval_only = common_args(data, out, max_seq_length=16) + ["--do_eval"]
        with pytest.raises(UserError) as error:
            run_main(eval_only)
        message = str(error.value)
        assert f"--output_dir {out} is in use by another run (pid {holder.pid} on " in message
        assert os.listdir(out) == [LOCK_NAME]  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without releasing: the kernel dropped its flock, its note stays and is reported.
    _, log = run_main(eval_only)
    assert any(f"the run that held it (pid {holder.pid} on " in message and "taking it over" in message
               for message in log.messages)
    assert (out / "eval_results.json").is_file() and (out / LOCK_NAME).read_text() == ""


# ---- resume --------------------------------------------------------------------------------------------------

def test_resume_with_another_trajectory_is_refused_listing_each_difference(data, trained, tmp_path):
    before = snapshot(trained)
    resume = ["--resume_from_checkpoint", trained / "checkpoint-1"]
    changed = train_args(data, trained, *resume)
    changed[changed.index("--learning_rate") + 1] = "2e-4"
    changed[changed.index("--per_gpu_train_batch_size") + 1] = "3"
    with pytest.raises(UserError) as error:
        run_main(changed)
    message = str(error.value)
    assert "--learning_rate 0.0001 there, 0.0002 now" in message
    assert "--per_gpu_train_batch_size 2 there, 3 now" in message
    assert "--seed" not in message

    # Other training data: same folder layout, one label edited.
    other = write_generic_task(tmp_path / "other", balanced_tweets(6), balanced_tweets(3, start=6))
    lines = (other / "train.tsv").read_text().splitlines()
    lines[1] = lines[1].split(T, 1)[0] + T + "an edited tweet"
    write_lines(other / "train.tsv", lines)
    with pytest.raises(UserError, match="training data"):
        run_main(train_args(other, trained, *resume))
    assert snapshot(trained) == before


# ---- every flag checked before a file is written ---------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [
    ("--per_gpu_train_batch_size", "0"), ("--per_gpu_eval_batch_size", "0"), ("--num_train_epochs", "0"),
    ("--num_train_epochs", "nan"), ("--learning_rate", "-1e-5"), ("--warmup_proportion", "1.5"),
    ("--weight_decay", "-0.01"), ("--max_steps", "0"), ("--save_steps", "-1"), ("--seed", "-1"),
    ("--adam_epsilon", "0"), ("--max_grad_norm", "0"), ("--reinit_std", "-0.02")])
def test_a_bad_number_stops_the_run_before_any_file_is_written(data, tmp_path, capsys, flag, value):
    out, data_before = tmp_path / "out", snapshot(data)
    argv = common_args(data, out, max_seq_length=16) + ["--do_train", "--do_eval", f"{flag}={value}"]
    if flag != "--max_steps":
        argv += ["--max_steps", "1"]
    with pytest.raises(SystemExit) as exit_info:
        run_main(argv)
    assert exit_info.value.code == 2
    assert f"{flag} must be" in capsys.readouterr().err
    assert not out.exists() and snapshot(data) == data_before


def test_too_few_examples_for_one_step_stops_the_run_before_any_file_is_written(data, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UserError, match="6 training examples give no full optimizer step with batch size 4 x "
                                        "accumulation 3"):
        run_main(common_args(data, out, max_seq_length=16) + ["--do_train", "--per_gpu_train_batch_size", "4",
                                                              "--gradient_accumulation_steps", "3"])
    assert not out.exists()


# ---- durable writes --------------------------------------------------------------------------------------------

@pytest.fixture
def file_events(monkeypatch):
    """Every fsync (by the path of its file descriptor) and rename, in order."""
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", os.path.abspath(source), os.path.abspath(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def assert_durable(events, target):
    """`target` came from a rename whose source was fsync'ed before it, and its folder was fsync'ed after."""
    target = os.path.abspath(target)
    [rename] = [i for i, event in enumerate(events) if event[0] == "replace" and event[2] == target]
    assert ("fsync", events[rename][1]) in events[:rename], f"{target}: not fsync'ed before the rename"
    assert ("fsync", os.path.dirname(target)) in events[rename:], f"{target}: folder not fsync'ed after"


def test_model_checkpoint_folder_and_results_are_fsynced_around_the_rename(tmp_path, file_events):
    config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(tmp_path / "model")
    assert_durable(file_events, tmp_path / "model" / "model.safetensors")
    assert_durable(file_events, tmp_path / "model" / "config.json")

    write_folder_atomically(str(tmp_path / "checkpoint-1"), lambda temp: Path(temp, "a.pt").write_bytes(b"state"))
    assert_durable(file_events, tmp_path / "checkpoint-1")
    [rename] = [event for event in file_events if event[0] == "replace" and event[2].endswith("checkpoint-1")]
    assert ("fsync", os.path.join(rename[1], "a.pt")) in file_events  # the files inside, before the rename

    args = SimpleNamespace(task_name="generic", label_column="label", text_a_column="text", text_b_column=None,
                           file_format="tsv", output_dir=str(tmp_path), per_gpu_eval_batch_size=2)
    runtime = Runtime(device=torch.device("cpu"), n_gpu=0, local_rank=-1, rank=0, world_size=1)
    dataset = FeatureDataset([InputFeatures([2, 5, 3], [1, 1, 1], [0, 0, 0], 1)])
    run_classifier.evaluate(args, runtime, BertForSequenceClassification(config), dataset)
    assert_durable(file_events, tmp_path / "eval_results.json")


def test_product_code_renames_only_through_the_one_helper():
    """Every atomic write goes through transformers/atomic_files.py (write_atomically, write_folder_atomically)."""
    files = [REPO_ROOT / "run_classifier.py", *(REPO_ROOT / "bert_read_step_to_step").glob("*.py"),
             *(REPO_ROOT / "transformers").glob("*.py")]
    renaming = sorted(path.relative_to(REPO_ROOT).as_posix() for path in files
                      if "os.replace(" in path.read_text(encoding="utf-8") or "os.rename(" in path.read_text())
    assert renaming == ["transformers/atomic_files.py"]


# ---- errors a user can read --------------------------------------------------------------------------------------

def error_lines(stderr):
    return [line for line in stderr.splitlines() if ": error: " in line]


def test_a_bad_data_line_is_one_line_and_exit_2_and_the_traceback_waits_for_debug(data, tmp_path):
    bad = write_generic_task(tmp_path / "data", balanced_tweets(6), balanced_tweets(3, start=6))
    lines = (bad / "dev.tsv").read_text().splitlines()
    lines[2] += T + "a tab inside the tweet"
    write_lines(bad / "dev.tsv", lines)
    command = run_classifier_command() + common_args(bad, tmp_path / "out", max_seq_length=16) + ["--do_eval"]
    proc = subprocess.run(command, capture_output=True, text=True, env=one_thread_env(), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert error_lines(proc.stderr) == [f"run_classifier.py: error: {bad / 'dev.tsv'}:3: expected 2 fields "
                                        f"separated by '\\t' (as the header on line 1 has), found 3: "
                                        f"{proc.stderr.split('found 3: ', 1)[1].splitlines()[0]}"]
    assert proc.stderr.rstrip().splitlines()[-1] == error_lines(proc.stderr)[0]
    debug = subprocess.run(command + ["--debug"], capture_output=True, text=True, env=one_thread_env(), cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "DataError" in debug.stderr


@pytest.mark.parametrize("module, argv, message", [
    ("bert_read_step_to_step.tasks", ["mrcp", "{tmp}"], "unknown task 'mrcp'; did you mean 'mrpc'?"),
    ("bert_read_step_to_step.features", ["generic", "{tmp}/none"], "{tmp}/none/train.tsv: no such file"),
    ("bert_read_step_to_step.reinit_sweep", ["--seeds", "x", "--output_dir", "{tmp}/sweep"], "seed 'x' is not"),
    ("bert_read_step_to_step.prepare_demo_data", ["--train", "100000000", "--out", "{tmp}/demo"], "asked for"),
    ("bert_read_step_to_step.article_line", ["--model", "{tmp}/none"], "{tmp}/none"),
])
def test_every_entry_point_reports_a_user_error_in_one_line(tmp_path, module, argv, message):
    argv, message = [arg.format(tmp=tmp_path) for arg in argv], message.format(tmp=tmp_path)
    proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=one_thread_env(), timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert line.startswith(f"python -m {module}: error: ") and message in line, proc.stderr[-2000:]


def test_a_bug_keeps_its_traceback_and_debug_shows_that_of_a_user_error(capsys, monkeypatch):
    def buggy(argv):
        return {}["no such key"]

    def user_error(argv):
        raise UserError("bad flag --x")

    with pytest.raises(KeyError):
        run_entry_point(buggy, "prog", [])
    with pytest.raises(SystemExit) as exit_info:
        run_entry_point(user_error, "prog", [])
    assert exit_info.value.code == 2 and capsys.readouterr().err == "prog: error: bad flag --x\n"
    with pytest.raises(UserError):
        run_entry_point(user_error, "prog", ["--debug"])
    monkeypatch.setenv("BERT_READ_DEBUG", "1")
    with pytest.raises(UserError):
        run_entry_point(user_error, "prog", [])


# ---- torchrun: evaluation during training, and kill-and-resume -----------------------------------------------

def torchrun(data, out, *extra):
    # 12 examples, 2 processes, batch 2: 3 batches per process and epoch; 4 steps cross an epoch boundary.
    # max_seq_length 32 leaves the tweets their own lengths, so the two ranks' dropout masks draw different
    # amounts from their generators, and a resume must restore each rank's own random state.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(REPO_ROOT / "run_classifier.py"), *common_args(data, out, max_seq_length=32), "--do_train",
            "--per_gpu_train_batch_size", "2", "--max_steps", "4", "--save_steps", "2", "--logging_steps", "2",
            "--learning_rate", "1e-4", "--seed", "5", *extra]


def eval_lines(output, prefix):
    """The metric lines rank 0 logged after '***** Eval results <prefix> (N examples) *****'."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if f"***** Eval results {prefix} (" in line)
    return [lines[start].split("*****")[1]] + [line.split(" - ")[-1] for line in lines[start + 1:start + 2]]


def child_pids(parent):
    """The pids whose parent is `parent`, read from /proc (Linux)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = (Path("/proc") / entry / "stat").read_text()
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                    children.append(int(entry))
    return children


def wait_until_unlocked(path, deadline):
    with open(path, "a+") as lock_file:
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{path} still locked after the run was killed"
                time.sleep(0.05)
                continue
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            return


def test_torchrun_evaluates_during_training_and_resumes_bit_identical(tmp_path):
    data = write_generic_task(tmp_path / "data", balanced_tweets(12), balanced_tweets(6, start=12))
    reference = tmp_path / "reference"
    proc = subprocess.run(torchrun(data, reference, "--evaluate_during_training", "--do_eval"), cwd=tmp_path,
                          env=one_thread_env(), capture_output=True, text=True, timeout=400)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    # Evaluation during training ran, on the whole dev set, and at the last step it gives the figures of the
    # final evaluation of the saved model (the same weights).
    step_4, final = eval_lines(output, "step-4"), eval_lines(output, "final")
    assert "(6 examples)" in step_4[0] and step_4[1:] == final[1:] and "acc = " in final[1]
    assert "Eval results step-2 (6 examples)" in output

    killed, log_path = tmp_path / "killed", tmp_path / "killed.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(torchrun(data, killed), cwd=tmp_path, env=one_thread_env(), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        try:
            while not (killed / "checkpoint-2").is_dir():
                assert run.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline
                time.sleep(0.01)
            # torchrun and both ranks, with no chance to clean up. torch >= 2.x starts each rank in a session of
            # its own, so killing torchrun's process group would leave the ranks training on.
            for pid in [*child_pids(run.pid), run.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    # run.wait() reaps torchrun only; the SIGKILLed ranks may still be tearing down, and the lock on run.lock
    # is released when the last of them has closed its files. Wait for that, as a user would wait for the
    # processes to go.
    wait_until_unlocked(killed / "run.lock", deadline=time.monotonic() + 60)
    assert not (killed / "model.safetensors").exists()
    resumed = subprocess.run(torchrun(data, killed, "--resume_from_checkpoint", str(killed / "checkpoint-2")),
                             cwd=tmp_path, env=one_thread_env(), capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    reference_weights = BertForSequenceClassification.from_pretrained(str(reference)).state_dict()
    resumed_weights = BertForSequenceClassification.from_pretrained(str(killed)).state_dict()
    differing = [name for name in reference_weights if not torch.equal(reference_weights[name], resumed_weights[name])]
    assert differing == []
