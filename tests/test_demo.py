"""`python -m bert_read_step_to_step.demo`: README's Command 1 in one line. End to end on a small set (64
training tweets, 2 steps), and the command it runs is README's long command, flag for flag."""
import json
import os
import re
import shlex
import subprocess
import sys

from _classifier_runs import one_thread_env
from _support import REPO_ROOT, minilm_dir
from bert_read_step_to_step.demo import demo_flags


def test_the_demo_prepares_the_data_prints_its_command_and_runs_it(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    env = dict(one_thread_env(), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "bert_read_step_to_step.demo", "--data_dir", str(data),
                           "--output_dir", str(out), "--sizes", "64", "16", "16"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    # The data was missing: it was prepared, with the sizes asked for.
    assert len((data / "train.tsv").read_text().splitlines()) == 1 + 64
    # The printed command is the one that ran: its flags are what training_args.json recorded.
    printed = re.search(r"^Running:\n  (.+)$", proc.stdout, re.M).group(1)
    words = shlex.split(printed)
    assert words[1] == str(REPO_ROOT / "run_classifier.py")  # run from elsewhere: the script's full path
    flags = words[2:]
    assert flags == demo_flags(str(minilm_dir()), str(data), str(out), 64)
    recorded = json.loads((out / "training_args.json").read_text())
    assert (recorded["logging_steps"], recorded["reinit_layers"], recorded["output_dir"]) == (1, 2, str(out))
    # What the run writes, the curves included: 64 tweets in batches of 32 are 2 steps, each a point.
    assert {"eval_results.json", "test_results.json", "weight_change.png", "loss_curve.png", "tensorboard"} <= \
        set(os.listdir(out))
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "loss" in row] == [1, 2]
    assert "Done. The scores are in" in proc.stdout


def test_the_long_command_in_the_readmes_is_the_demos_command():
    for page in ("README.md", "docs/README.zh-CN.md"):
        lines = [line for line in (REPO_ROOT / page).read_text(encoding="utf-8").splitlines()
                 if line.startswith("python run_classifier.py") and "--output_dir outputs/demo " in line]
        assert len(lines) == 1, page
        assert shlex.split(lines[0])[2:] == demo_flags("$MODEL", "$DATA", "outputs/demo", 2000), page
