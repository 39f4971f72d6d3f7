"""The re-init sweep: its statistics, its bookkeeping (resume, extend, refuse), and one real tiny sweep.

Bookkeeping tests replace the single run (`sweep.attempt.train_and_evaluate`) with a fake whose score is
computed from its command line, so they run in a fraction of a second and can count calls. The real sweep
fine-tunes MiniLM on a few dozen tweets for one epoch per run.
"""
import contextlib
import csv
import http.server
import importlib.util
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from _support import REPO_ROOT, minilm_dir, read_tweets
from bert_read_step_to_step import reinit_sweep
from bert_read_step_to_step.sweep import attempt as sweep_attempt, data as sweep_data, plan as sweep_plan
from bert_read_step_to_step.sweep import runs as sweep_runs
from bert_read_step_to_step.prepare_demo_data import clean_text
from bert_read_step_to_step.sweep.plan import Setting, SweepError

LABELS = ("negative", "neutral", "positive")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- helpers -------------------------------------------------------------------------------------------

def write_tweets(folder, per_label_train=12, per_label_dev=6):
    """train.tsv and dev.tsv in the demo layout, from the real tweets, the same number of each label."""
    by_label = {label: [] for label in LABELS}
    for label, text in read_tweets():  # the file is sorted by label: read it all
        text = clean_text(text)
        if text and len(by_label[label]) < per_label_train + per_label_dev:
            by_label[label].append(text)
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", slice(0, per_label_train)), ("dev", slice(per_label_train, None))):
        rows = [f"{label}\t{text}\n" for label in LABELS for text in by_label[label][part]]
        (folder / f"{split}.tsv").write_text("label\ttext\n" + "".join(rows), encoding="utf-8")
    return folder


def sweep_argv(data_dir, output_dir, settings="0,2+pooler", seeds="1,2", *extra):
    """One run at a time (the order of calls is then known) unless `extra` gives --workers again."""
    return ["--data_dir", str(data_dir), "--output_dir", str(output_dir), "--model_name_or_path", str(minilm_dir()),
            "--train_size", "24", "--settings", settings, "--seeds", seeds, "--epochs", "1",
            "--max_seq_length", "24", "--batch_size", "8", "--workers", "1", *extra]


def argv_value(argv, flag):
    """The value after the last `flag`: argparse lets the last occurrence win."""
    index = max(i for i, item in enumerate(argv) if item == flag)
    return argv[index + 1]


class FakeRun:
    """Stands in for one fine-tuning run: records its command line, returns acc = 0.5 + 0.05 * layers
    + 0.02 (pooler) + 0.001 * seed, and leaves weights and a checkpoint folder behind like a real run."""

    def __init__(self, fail_on_call=None):
        self.calls, self.threads = [], []
        self.fail_on_call = fail_on_call
        self.lock = threading.Lock()  # with --workers, runs start in several threads at once

    def __call__(self, argv, log_path, verbose=False, threads=None, command=None):
        with self.lock:
            self.calls.append(list(argv))
            self.threads.append(threads)
            number = len(self.calls)
        with open(log_path, "w", encoding="utf-8") as log:
            log.write("fake run\n")
        run_dir = argv_value(argv, "--output_dir")
        if number == self.fail_on_call:
            open(os.path.join(run_dir, "half_written.txt"), "w").close()
            raise RuntimeError("killed mid-run")
        open(os.path.join(run_dir, "model.safetensors"), "wb").close()
        os.makedirs(os.path.join(run_dir, "checkpoint-5"))
        layers, seed = int(argv_value(argv, "--reinit_layers")), int(argv_value(argv, "--seed"))
        return {"acc": 0.5 + 0.05 * layers + 0.02 * ("--reinit_pooler" in argv) + 0.001 * seed}

    def seen(self):
        """(setting label, seed) of each call, in call order."""
        return [(Setting(int(argv_value(a, "--reinit_layers")), "--reinit_pooler" in a).label,
                 int(argv_value(a, "--seed"))) for a in self.calls]


@pytest.fixture
def fake_run(monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(sweep_attempt, "train_and_evaluate", fake)
    return fake


@pytest.fixture
def data_dir(tmp_path):
    return write_tweets(tmp_path / "tweets")


def results_of(output_dir):
    return json.loads((output_dir / "results.json").read_text(encoding="utf-8"))


def hand_written_results(runs, majority=None):
    """A results.json document as the sweep writes it, with the given (setting, seed, score) runs and, when
    given, the majority-class baseline {"label", "share", "score"} (older documents have none)."""
    sweep = {"task_name": "generic", "data_dir": "/data/tweets", "model_name_or_path": "/models/minilm/model",
             "train_size": 500, "data_seed": 42, "epochs": 2.0, "max_seq_length": 64, "batch_size": 16,
             "learning_rate": 1e-4, "extra_args": []}
    records = [{"setting": setting, "seed": seed, "metrics": {"acc": score}, "score": score}
               for setting, seed, score in runs]
    return {"format": 1, "sweep": sweep, "primary_metric": "acc",
            "data": {"train_dir": "/out/data_train500_seed42", "train_examples": 500,
                     **({"majority": majority} if majority else {})}, "runs": records}


HAND_RUNS = [("0", 1, 0.60), ("0", 2, 0.70), ("0", 3, 0.65), ("2+pooler", 1, 0.72), ("2+pooler", 2, 0.74),
             ("1", 1, 0.50)]


# ---- settings and seeds -------------------------------------------------------------------------------

def test_settings_and_seeds_parse():
    assert sweep_plan.parse_settings("0, 1+pooler,2,0") == [Setting(0, False), Setting(1, True), Setting(2, False)]
    assert [s.label for s in sorted(sweep_plan.parse_settings("3+pooler,0+pooler,1,0"))] == \
        ["0", "0+pooler", "1", "3+pooler"]
    assert Setting(2, True).describe() == "top 2 + pooler" and Setting(0, False).describe() == "none"
    assert sweep_plan.parse_seeds("1-3,10,2") == [1, 2, 3, 10]
    with pytest.raises(SweepError, match="'pool' is not understood"):
        sweep_plan.parse_settings("2+pool")
    with pytest.raises(SweepError, match="a <= b"):
        sweep_plan.parse_seeds("5-1")


# ---- statistics ----------------------------------------------------------------------------------------

def test_summary_matches_hand_computed_values(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(hand_written_results(HAND_RUNS)), encoding="utf-8")
    outcome = reinit_sweep.main(["--output_dir", str(tmp_path), "--report_only"])

    # "0": 0.60 0.70 0.65 -> mean 0.65; deviations -0.05 0.05 0 -> sample variance 0.005 / 2 -> std 0.05.
    # "2+pooler": 0.72 0.74 -> mean 0.73; sample variance (0.01^2 + 0.01^2) / 1 -> std 0.01 * sqrt(2).
    # "1": one seed -> no std.
    by_label = {summary.setting.label: summary for summary in outcome.summaries}
    assert list(by_label) == ["0", "1", "2+pooler"]  # sorted by layers, then pooler
    assert by_label["0"].mean == pytest.approx(0.65) and by_label["0"].std == pytest.approx(0.05)
    assert (by_label["0"].min, by_label["0"].max, by_label["0"].seeds) == (0.60, 0.70, [1, 2, 3])
    assert by_label["2+pooler"].mean == pytest.approx(0.73)
    assert by_label["2+pooler"].std == pytest.approx(0.01 * math.sqrt(2))
    assert by_label["1"].std is None

    markdown = (tmp_path / "summary.md").read_text(encoding="utf-8")
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "setting" not in line]
    assert rows == ["| 0 | 65.0 ± 5.0 | 60.0 | 70.0 | n/a | 3 |",
                    "| 1 | 50.0 (one score) | 50.0 | 50.0 | n/a | 1 |",
                    "| 2+pooler | 73.0 ± 1.4 | 72.0 | 74.0 | n/a | 2 |"]
    assert "dev acc" in markdown and "500 training examples" in markdown

    with open(tmp_path / "summary.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [row["setting"] for row in table] == ["0", "1", "2+pooler"]
    assert float(table[0]["mean"]) == pytest.approx(0.65) and float(table[0]["std"]) == pytest.approx(0.05)
    assert (float(table[2]["min"]), float(table[2]["max"]), table[2]["n_seeds"]) == (0.72, 0.74, "2")
    assert (table[2]["reinit_layers"], table[2]["reinit_pooler"], table[1]["std"]) == ("2", "True", "")


def test_failure_rate_counts_runs_at_or_below_the_majority_score(tmp_path):
    runs = [("0", 1, 0.40), ("0", 2, 0.34), ("0", 3, 0.30), ("0", 4, 0.70),
            ("2+pooler+bertadam", 1, 0.66), ("2+pooler+bertadam", 2, 0.35)]
    document = hand_written_results(runs, majority={"label": "neutral", "share": 0.34, "score": 0.34})
    (tmp_path / "results.json").write_text(json.dumps(document), encoding="utf-8")
    outcome = reinit_sweep.main(["--output_dir", str(tmp_path), "--report_only"])

    # "0": 0.34 (equal: at the baseline) and 0.30 failed, 0.40 and 0.70 did not -> 2 of 4.
    # "2+pooler+bertadam": 0.35 is above 0.34 -> 0 of 2.
    by_label = {summary.setting.label: summary for summary in outcome.summaries}
    assert (by_label["0"].failures, by_label["0"].failure_rate) == (2, 0.5)
    assert (by_label["2+pooler+bertadam"].failures, by_label["2+pooler+bertadam"].failure_rate) == (0, 0.0)
    assert (by_label["0"].min, by_label["0"].max) == (0.30, 0.70)
    markdown = (tmp_path / "summary.md").read_text(encoding="utf-8")
    # "0": mean 0.435, squared deviations sum to 0.0987, / 3 -> std 0.181; "2+pooler+bertadam": 0.31 / sqrt(2).
    assert "| 0 | 43.5 ± 18.1 | 30.0 | 70.0 | 2/4 (50%) | 4 |" in markdown
    assert "| 2+pooler+bertadam | 50.5 ± 21.9 | 35.0 | 66.0 | 0/2 (0%) | 2 |" in markdown
    assert "at or below 34.0" in markdown and "'neutral'" in markdown
    with open(tmp_path / "summary.csv", encoding="utf-8") as f:
        table = {row["setting"]: row for row in csv.DictReader(f)}
    assert (table["0"]["failures"], float(table["0"]["failure_rate"])) == ("2", 0.5)
    assert (table["2+pooler+bertadam"]["use_bertadam"], table["2+pooler+bertadam"]["reinit_layers"]) == ("True", "2")


def test_majority_baseline_is_read_from_the_dev_file(tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "train.tsv").write_text("label\ttext\na\tx\nb\ty\nc\tz\n", encoding="utf-8")
    (folder / "dev.tsv").write_text("label\ttext\nb\tu\nb\tv\na\tw\nb\tx\n", encoding="utf-8")
    baseline = sweep_data.majority_baseline("generic", str(folder), {})
    assert baseline == {"label": "b", "share": 0.75, "score": 0.75}  # 3 of the 4 dev labels are "b"


def test_stabilizer_settings_parse_label_and_reach_the_command_line(tmp_path):
    settings = sweep_plan.parse_settings("0,2+pooler,bertadam,2+pooler+bertadam,mixout0.7,prior_wd,"
                                         "1+mixout0.1+prior_wd")
    assert settings[2] == Setting(0, False, bertadam=True)
    assert settings[3] == Setting(2, True, bertadam=True)
    assert settings[4] == Setting(0, False, mixout=0.7) and settings[5] == Setting(0, False, prior_wd=True)
    assert settings[6] == Setting(1, False, mixout=0.1, prior_wd=True)
    assert [sweep_plan.parse_setting(setting.label) for setting in settings] == settings  # labels read back
    assert [setting.label for setting in settings[2:5]] == ["bertadam", "2+pooler+bertadam", "mixout0.7"]
    assert Setting(2, True, bertadam=True, mixout=0.7).describe() == "top 2 + pooler + BERTAdam + mixout 0.7"
    config = {"model_name_or_path": "m", "task_name": "generic", "epochs": 1.0, "max_seq_length": 24,
              "batch_size": 8, "learning_rate": 1e-4, "precision": "fp32", "batching": "random", "extra_args": []}
    argv = sweep_plan.run_argv(config, "d", settings[3], 1, "r")
    assert argv_value(argv, "--reinit_layers") == "2" and "--reinit_pooler" in argv and "--use_bertadam" in argv
    argv = sweep_plan.run_argv(config, "d", settings[6], 1, "r")
    assert argv_value(argv, "--mixout") == "0.1" and "--prior_weight_decay" in argv
    assert float(argv_value(argv, "--weight_decay")) > 0 and "--use_bertadam" not in argv
    for bad in ("mixout1.5", "bertadam+bertadam", "pooler", "bertadam+2"):
        with pytest.raises(SweepError, match=f"setting '{re.escape(bad)}'"):
            sweep_plan.parse_setting(bad)
    with pytest.raises(SweepError, match="--mixout"):
        sweep_plan.check_extra_args(["--mixout", "0.3"])


def test_results_from_before_failure_rates_get_the_baseline_added(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out))
    old = results_of(out)
    del old["data"]["majority"]
    for record in old["runs"]:
        for key in ("use_bertadam", "mixout", "prior_weight_decay"):
            del record[key]
    (out / "results.json").write_text(json.dumps(old), encoding="utf-8")
    outcome = reinit_sweep.main(sweep_argv(data_dir, out))
    assert outcome.ran == 0 and outcome.skipped == 4
    # write_tweets gives 6 dev tweets of each label: a tie, won by the first label; share 1/3.
    assert results_of(out)["data"]["majority"] == {"label": "negative", "share": 1 / 3, "score": 1 / 3}
    assert all(summary.failures == 0 for summary in outcome.summaries)  # the fake scores are all > 0.5


# ---- resume and extend ---------------------------------------------------------------------------------

def test_resume_skips_finished_runs(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    first = reinit_sweep.main(sweep_argv(data_dir, out))
    assert (first.ran, first.skipped, len(fake_run.calls)) == (4, 0, 4)
    assert fake_run.seen() == [("0", 1), ("2+pooler", 1), ("0", 2), ("2+pooler", 2)]  # seed by seed
    saved = results_of(out)
    assert [record["score"] for record in saved["runs"]] == pytest.approx([0.501, 0.621, 0.502, 0.622])

    again = reinit_sweep.main(sweep_argv(data_dir, out))
    assert (again.ran, again.skipped, len(fake_run.calls)) == (0, 4, 4)  # no new call
    assert results_of(out)["runs"] == saved["runs"]


def test_extending_runs_only_the_new_seeds_and_settings(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out))
    fake_run.calls.clear()

    more_seeds = reinit_sweep.main(sweep_argv(data_dir, out, "0,2+pooler", "1,2,3"))
    assert sorted(fake_run.seen()) == [("0", 3), ("2+pooler", 3)]
    assert (more_seeds.ran, more_seeds.skipped) == (2, 4)
    fake_run.calls.clear()

    reinit_sweep.main(sweep_argv(data_dir, out, "0,1,2+pooler", "1,2,3"))
    assert sorted(fake_run.seen()) == [("1", 1), ("1", 2), ("1", 3)]
    saved = results_of(out)
    assert len(saved["runs"]) == 9
    assert {(record["setting"], record["seed"]) for record in saved["runs"]} == \
        {(label, seed) for label in ("0", "1", "2+pooler") for seed in (1, 2, 3)}
    assert "| 1 | 55.2 ± 0.1 |" in (out / "summary.md").read_text(encoding="utf-8")


def test_results_are_saved_after_each_run_and_a_stopped_run_is_redone_in_a_new_attempt(tmp_path, data_dir,
                                                                                         monkeypatch):
    out = tmp_path / "sweep"
    failing = FakeRun(fail_on_call=3)
    monkeypatch.setattr(sweep_attempt, "train_and_evaluate", failing)
    with pytest.raises(RuntimeError, match="killed mid-run"):
        reinit_sweep.main(sweep_argv(data_dir, out))
    assert [(r["setting"], r["seed"]) for r in results_of(out)["runs"]] == [("0", 1), ("2+pooler", 1)]
    # The stopped run wrote in its own attempt folder, kept for reading; no run folder names it.
    stopped = list((out / "runs" / "0").glob("seed-2.attempt-*"))
    assert len(stopped) == 1 and (stopped[0] / "half_written.txt").exists()
    assert not (out / "runs" / "0" / "seed-2").exists()

    fake = FakeRun()
    monkeypatch.setattr(sweep_attempt, "train_and_evaluate", fake)
    outcome = reinit_sweep.main(sweep_argv(data_dir, out))
    assert fake.seen() == [("0", 2), ("2+pooler", 2)]
    assert outcome.ran == 2 and len(results_of(out)["runs"]) == 4
    # The new attempt ran in a folder of its own, was moved into place, and the stopped one was removed.
    assert argv_value(fake.calls[0], "--output_dir") != str(stopped[0])
    assert (out / "runs" / "0" / "seed-2" / "run.log").exists()
    assert not (out / "runs" / "0" / "seed-2" / "half_written.txt").exists()
    assert list((out / "runs").rglob("*.attempt-*")) == []
    record = next(r for r in results_of(out)["runs"] if (r["setting"], r["seed"]) == ("0", 2))
    assert record["output_dir"] == os.path.join("runs", "0", "seed-2")
    assert record["attempt"] == os.path.basename(argv_value(fake.calls[0], "--output_dir"))
    assert argv_value(record["argv"], "--output_dir") == str(out / "runs" / "0" / "seed-2")


def test_an_orphan_attempt_never_reaches_the_run_folder(tmp_path, data_dir, fake_run):
    """A worker that only looked dead may still be writing its attempt of a run that ran again elsewhere:
    the recorded folder is the attempt that finished first, and the orphan's folder is removed at the end."""
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out, "0", "2"))
    orphan = out / "runs" / "0" / "seed-1.attempt-slowhost-4242-0badcafe"
    orphan.mkdir(parents=True)
    (orphan / "run.log").write_text("still training on a machine that looked dead\n")
    outcome = reinit_sweep.main(sweep_argv(data_dir, out, "0", "1,2"))
    assert outcome.ran == 1 and fake_run.seen()[-1] == ("0", 1)
    assert (out / "runs" / "0" / "seed-1" / "run.log").read_text() == "fake run\n"
    assert not orphan.exists() and list((out / "runs").rglob("*.attempt-*")) == []
    record = next(r for r in results_of(out)["runs"] if r["seed"] == 1)
    assert record["worker"].startswith("local ") and record["launcher"] == "local"
    assert record["threads_per_run"] is None  # --workers 1: torch's own choice


def test_threads_per_run_reaches_every_run_and_its_record(tmp_path, data_dir, fake_run):
    reinit_sweep.main(sweep_argv(data_dir, tmp_path / "sweep", "0,2+pooler", "1", "--workers", "2",
                                 "--threads_per_run", "3"))
    assert fake_run.threads == [3, 3]
    assert [r["threads_per_run"] for r in results_of(tmp_path / "sweep")["runs"]] == [3, 3]


def test_each_run_logs_its_loss_about_twenty_times_or_every_step(tmp_path, data_dir, fake_run):
    # 24 training examples in batches of 8, one epoch: 3 steps, fewer than 20 -> every step.
    reinit_sweep.main(sweep_argv(data_dir, tmp_path / "short", "0", "1"))
    assert argv_value(fake_run.calls[-1], "--logging_steps") == "1"
    # 500 examples of 16 -> 32 batches x 2 epochs = 64 steps -> every 64 // 20 = 3 steps: 21 points.
    assert sweep_plan.logging_steps(500, 16, 2.0) == 3 and sweep_plan.logging_steps(1000, 16, 3.0) == 9
    # A --logging_steps after -- comes later on the command line, so it wins.
    reinit_sweep.main(sweep_argv(data_dir, tmp_path / "mine", "0", "1", "--", "--logging_steps", "7"))
    assert argv_value(fake_run.calls[-1], "--logging_steps") == "7"


def test_a_lost_run_runs_again_and_the_others_are_skipped(tmp_path, data_dir, fake_run, capsys):
    """A run recorded lost (its worker died and the engine gave up on it) is not a result: the same command
    runs it again, says how many it skipped, and the new record replaces the lost one."""
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out))
    saved = results_of(out)
    lost = saved["runs"][1]
    saved["runs"][1] = {key: lost[key] for key in ("setting", "reinit_layers", "reinit_pooler", "seed")}
    saved["runs"][1].update(status="lost", score=None, metrics={}, lost="the Dask workers running it died")
    (out / "results.json").write_text(json.dumps(saved), encoding="utf-8")
    capsys.readouterr()
    fake_run.calls.clear()

    capsys.readouterr()
    report = reinit_sweep.main(["--output_dir", str(out), "--report_only"])
    assert [len(summary.seeds) for summary in report.summaries] == [2, 1]  # a lost run is no result
    assert ("1 runs lost, not in the tables (first: setting 2+pooler, seed 1: the Dask workers running it died); "
            "run the same command again to run them") in capsys.readouterr().out
    outcome = reinit_sweep.main(sweep_argv(data_dir, out))
    assert fake_run.seen() == [("2+pooler", 1)] and (outcome.ran, outcome.skipped) == (1, 3)
    assert "skipping 3 already in results.json, 1 to run (1 of them lost last time)" in capsys.readouterr().out
    runs = results_of(out)["runs"]
    assert len(runs) == 4 and all(record["status"] == "finished" for record in runs)


def test_parallel_workers_run_every_run_once_with_the_cores_shared_out(tmp_path, data_dir, fake_run):
    serial = reinit_sweep.main(sweep_argv(data_dir, tmp_path / "serial", "0,1,2+pooler", "1-3"))
    fake_run.calls.clear()
    fake_run.threads.clear()
    parallel = reinit_sweep.main(sweep_argv(data_dir, tmp_path / "parallel", "0,1,2+pooler", "1-3", "--workers", "3"))
    assert sorted(fake_run.seen()) == sorted((s, seed) for s in ("0", "1", "2+pooler") for seed in (1, 2, 3))
    cores = len(os.sched_getaffinity(0))
    assert fake_run.threads == [max(1, cores // 3)] * 9
    assert parallel.ran == 9 and len(results_of(tmp_path / "parallel")["runs"]) == 9
    assert [(s.setting, s.seeds, s.scores) for s in parallel.summaries] == \
        [(s.setting, s.seeds, s.scores) for s in serial.summaries]


def test_a_failed_parallel_run_stops_the_sweep_and_the_finished_runs_are_kept(tmp_path, data_dir, monkeypatch):
    failing = FakeRun(fail_on_call=3)
    monkeypatch.setattr(sweep_attempt, "train_and_evaluate", failing)
    with pytest.raises(RuntimeError, match="killed mid-run"):
        reinit_sweep.main(sweep_argv(data_dir, tmp_path / "sweep", "0,2+pooler", "1-3", "--workers", "2"))
    saved = [(record["setting"], record["seed"]) for record in results_of(tmp_path / "sweep")["runs"]]
    failed = failing.seen()[2]
    assert failed not in saved and ("0", 1) in saved and len(saved) >= 2
    assert set(saved) == set(failing.seen()) - {failed}  # every other run that started finished and was saved


def test_model_weights_are_deleted_unless_kept(tmp_path, data_dir, fake_run):
    reinit_sweep.main(sweep_argv(data_dir, tmp_path / "a", "0", "1"))
    run_dir = tmp_path / "a" / "runs" / "0" / "seed-1"
    assert run_dir.is_dir() and (run_dir / "run.log").exists()
    assert not (run_dir / "model.safetensors").exists() and not (run_dir / "checkpoint-5").exists()

    reinit_sweep.main(sweep_argv(data_dir, tmp_path / "b", "0", "1", "--keep_models"))
    kept = tmp_path / "b" / "runs" / "0" / "seed-1"
    assert (kept / "model.safetensors").exists() and (kept / "checkpoint-5").is_dir()


# ---- refusals ------------------------------------------------------------------------------------------

def test_corrupted_results_json_names_the_file_and_line_and_is_kept(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out))
    path = out / "results.json"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[6] = "  oops this is not JSON\n"  # line 7, counted from 1
    path.write_text("".join(lines), encoding="utf-8")
    damaged = path.read_bytes()
    fake_run.calls.clear()

    with pytest.raises(SweepError) as error:
        reinit_sweep.main(sweep_argv(data_dir, out, "0,2+pooler", "1,2,3"))
    assert f"{path}:7:" in str(error.value) and "not valid JSON" in str(error.value)
    assert fake_run.calls == [] and path.read_bytes() == damaged  # nothing ran, nothing overwritten

    document = hand_written_results(HAND_RUNS)
    del document["runs"][1]["score"]
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(SweepError, match=r"results\.json: runs\[1\] has no valid 'score'") as error:
        reinit_sweep.main(["--output_dir", str(out), "--report_only"])
    assert str(path) in str(error.value)


def test_changed_training_values_are_refused(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out))
    fake_run.calls.clear()
    with pytest.raises(SweepError, match=r"learning_rate: 0\.0001 there, 3e-05 now"):
        reinit_sweep.main(sweep_argv(data_dir, out, "0,2+pooler", "1,2", "--learning_rate", "3e-5"))
    assert fake_run.calls == []


def test_batching_reaches_every_run_and_a_resumed_sweep_keeps_it(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out))  # the default: length-bucketed batches
    assert len(fake_run.calls) == 4 and all("--group_by_length" in argv for argv in fake_run.calls)
    assert results_of(out)["sweep"]["batching"] == "length"
    fake_run.calls.clear()
    with pytest.raises(SweepError, match=r"batching: 'length' there, 'random' now"):
        reinit_sweep.main(sweep_argv(data_dir, out, "0,2+pooler", "1,2", "--batching", "random"))
    # A results.json from before --batching existed was made with plain random batches: a length-bucketed
    # sweep may not add runs to it, a random one may.
    old = results_of(out)
    del old["sweep"]["batching"]
    (out / "results.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(SweepError, match=r"batching: 'random' there, 'length' now"):
        reinit_sweep.main(sweep_argv(data_dir, out, "0,2+pooler", "1-3"))
    assert fake_run.calls == []
    extended = reinit_sweep.main(sweep_argv(data_dir, out, "0,2+pooler", "1-3", "--batching", "random"))
    assert extended.ran == 2 and not any("--group_by_length" in argv for argv in fake_run.calls)
    with pytest.raises(SweepError, match="--group_by_length .* through --batching"):
        sweep_plan.check_extra_args(["--group_by_length"])


def test_regenerated_data_is_refused(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out))
    lines = (data_dir / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (data_dir / "train.tsv").write_text(lines[0] + "".join(reversed(lines[1:])), encoding="utf-8")
    fake_run.calls.clear()
    with pytest.raises(SweepError, match="is not the one the finished runs used"):
        reinit_sweep.main(sweep_argv(data_dir, out, "0,2+pooler", "1,2,3"))
    assert fake_run.calls == []


def test_pass_through_arguments_reach_every_run_but_cannot_override_the_sweep(tmp_path, data_dir, fake_run):
    reinit_sweep.main(sweep_argv(data_dir, tmp_path / "ok", "0", "1", "--", "--weight_decay", "0.01"))
    assert fake_run.calls[0][-2:] == ["--weight_decay", "0.01"]
    for extra in (["--seed", "7"], ["--learning_rate=0.1"], ["--reinit_keys", "bert.pooler"]):
        with pytest.raises(SweepError, match="the sweep sets it for every run"):
            reinit_sweep.main(sweep_argv(data_dir, tmp_path / "refused", "0", "1", "--", *extra))
    assert len(fake_run.calls) == 1


def test_settings_deeper_than_the_model_are_refused_before_any_run(tmp_path, data_dir, fake_run):
    with pytest.raises(SweepError, match=r"setting 7\+pooler does not fit .*: the model has 6 encoder layers"):
        reinit_sweep.main(sweep_argv(data_dir, tmp_path / "sweep", "0,7+pooler", "1"))
    assert fake_run.calls == []


# ---- one sweep per folder -----------------------------------------------------------------------------

# A sweep in its own process whose runs are fakes that wait: each writes `started` in the sweep folder's
# parent and waits there until the test writes `release`. argv: the sweep's arguments.
WAITING_SWEEP = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from bert_read_step_to_step import reinit_sweep
from bert_read_step_to_step.sweep import attempt

def waiting_run(argv, log_path, verbose=False, threads=None, command=None):
    run_dir = argv[argv.index("--output_dir") + 1]
    open(log_path, "w").write("waiting fake run\n")
    open(os.path.join(run_dir, "model.safetensors"), "wb").close()
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(run_dir))))
    open(os.path.join(here, "started"), "w").close()
    while not os.path.exists(os.path.join(here, "release")):
        time.sleep(0.05)
    return {"acc": 0.5 + 0.001 * int(argv[argv.index("--seed") + 1])}

attempt.train_and_evaluate = waiting_run
reinit_sweep.main(sys.argv[1:])
"""


def folder_contents(folder):
    """{relative path: bytes} of every file below `folder`."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_second_sweep_into_a_running_sweeps_folder_is_refused_naming_its_pid(tmp_path, data_dir):
    out = tmp_path / "sweep"
    script = tmp_path / "waiting_sweep.py"
    script.write_text(WAITING_SWEEP, encoding="utf-8")
    first = subprocess.Popen([sys.executable, str(script), *sweep_argv(data_dir, out, "0", "1")], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300  # a bound on a hang, not a timing: it starts in seconds
        while not (tmp_path / "started").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
            time.sleep(0.05)
        before = folder_contents(out)
        assert "results.json" in before
        assert any(re.fullmatch(r"runs/0/seed-1\.attempt-[^/]+/model\.safetensors", name) for name in before)

        # Other settings, other seeds, the same folder: refused at once, by a real second process.
        for extra in (["0,2+pooler", "1-3"], None):
            argv = sweep_argv(data_dir, out, *extra) if extra else ["--output_dir", str(out), "--report_only"]
            second = subprocess.run([sys.executable, "-m", "bert_read_step_to_step.reinit_sweep", *argv],
                                    cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
            assert second.returncode == 2, second.stderr
            last = second.stderr.strip().splitlines()[-1]
            assert f"another sweep is running in this folder (pid {first.pid}," in last, second.stderr
            assert "Traceback" not in second.stderr and not (out / "runs" / "2+pooler").exists()
            assert folder_contents(out) == before  # the first sweep's files, byte for byte

        (tmp_path / "release").write_text("")
        assert first.wait(timeout=300) == 0
    finally:
        (tmp_path / "release").write_text("")
        if first.poll() is None:
            first.kill()
        first.wait()
    saved = results_of(out)
    assert [(r["setting"], r["seed"], r["score"]) for r in saved["runs"]] == [("0", 1, 0.501)]
    assert (out / "sweep.lock").read_text().strip() == str(first.pid)


def test_the_lock_of_a_dead_sweep_is_taken_over(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "sweep.lock").write_text(dead.stdout)  # what a killed sweep leaves: its pid, no flock held
    outcome = reinit_sweep.main(sweep_argv(data_dir, out, "0", "1"))
    assert outcome.ran == 1 and (out / "sweep.lock").read_text().strip() == str(os.getpid())


def test_run_folders_without_their_results_json_are_not_deleted(tmp_path, data_dir, fake_run):
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out, "0", "1"))
    (out / "results.json").rename(tmp_path / "moved.json")
    (out / "runs" / "0" / "seed-2").mkdir()
    (out / "runs" / "0" / "seed-2" / "run.log").write_text("another sweep's run")
    with pytest.raises(SweepError, match=r"runs holds the run folders of a sweep whose results.json is not there"):
        reinit_sweep.main(sweep_argv(data_dir, out, "0", "1,2"))
    assert (out / "runs" / "0" / "seed-2" / "run.log").read_text() == "another sweep's run"
    assert len(fake_run.calls) == 1


def test_a_sweep_refused_for_new_data_leaves_the_old_subset_as_it_was(tmp_path, data_dir, fake_run):
    """The demo data changes when prepare_demo_data changes (mojibake repair): an old sweep folder is
    refused, and its training subset stays the one its runs trained on."""
    out = tmp_path / "sweep"
    reinit_sweep.main(sweep_argv(data_dir, out, "0", "1"))
    before = folder_contents(out)
    lines = (data_dir / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    repaired = [line.replace("\t", "\t(repaired) ", 1) for line in lines[1:]]
    (data_dir / "train.tsv").write_text(lines[0] + "".join(repaired), encoding="utf-8")
    with pytest.raises(SweepError, match="is not the one the finished runs used"):
        reinit_sweep.main(sweep_argv(data_dir, out, "0", "1,2"))
    assert folder_contents(out) == before and len(fake_run.calls) == 1


# ---- runs that diverge or fail -------------------------------------------------------------------------

# Stands in for run_classifier.py (sweep_runs.RUN_COMMAND), exiting the ways it does. --reinit_layers 1
# always diverges; otherwise seed 2 diverges (exit 3), seed 3 "finishes" with a NaN score, seed 5 fails with
# a user error (exit 2), and other seeds score 0.5 + 0.05 * seed.
FAKE_RUN_CLASSIFIER = r"""
import json, math, os, sys
argv = sys.argv[1:]
value = lambda flag: argv[len(argv) - 1 - argv[::-1].index(flag) + 1]
seed, layers = int(value("--seed")), int(value("--reinit_layers"))
print("training ...")
if layers == 1 or seed == 2:
    print(f"training diverged at step 3: loss nan; lower --learning_rate or set --max_grad_norm")
    sys.exit(3)
if seed == 5:
    print("run_classifier.py: error: --data_dir: no train.tsv")
    sys.exit(2)
acc = math.nan if seed == 3 else 0.5 + 0.05 * seed
with open(os.path.join(value("--output_dir"), "eval_results.json"), "w") as f:
    json.dump({"acc": acc, "prefix": ""}, f)
"""


@pytest.fixture
def fake_run_classifier(tmp_path, monkeypatch):
    script = tmp_path / "fake_run_classifier.py"
    script.write_text(FAKE_RUN_CLASSIFIER, encoding="utf-8")
    monkeypatch.setattr(sweep_runs, "RUN_COMMAND", (sys.executable, str(script)))
    return script


def test_a_diverged_run_is_recorded_without_a_score_and_counted_as_failed(tmp_path, data_dir, fake_run_classifier):
    out = tmp_path / "sweep"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        outcome = reinit_sweep.main(sweep_argv(data_dir, out, "0,1", "1-4"))
    runs = {(r["setting"], r["seed"]): r for r in results_of(out)["runs"]}
    assert {key: r["status"] for key, r in runs.items() if key[0] == "0"} == \
        {("0", 1): "finished", ("0", 2): "diverged", ("0", 3): "diverged", ("0", 4): "finished"}
    assert all(r["status"] == "diverged" and r["score"] is None for key, r in runs.items() if key[0] == "1")
    assert runs[("0", 2)]["diverged"].startswith("training diverged at step 3: loss nan")
    assert runs[("0", 3)]["diverged"] == "dev acc is nan" and runs[("0", 3)]["score"] is None
    assert runs[("0", 4)]["score"] == pytest.approx(0.7)
    assert "DIVERGED, no score (training diverged at step 3" in printed.getvalue()
    assert "NaN" not in (out / "results.json").read_text(encoding="utf-8")  # strict JSON: no NaN anywhere

    # Setting 0: scores 0.55 and 0.70 -> mean 0.625, std 0.15 / sqrt(2) = 0.106; 2 of 4 runs diverged,
    # none scored at or below the majority (1/3) -> failed 2/4. Setting 1: every run diverged.
    by_label = {summary.setting.label: summary for summary in outcome.summaries}
    assert by_label["0"].mean == pytest.approx(0.625) and by_label["0"].std == pytest.approx(0.15 / math.sqrt(2))
    assert (by_label["0"].failures, by_label["0"].failure_rate, by_label["0"].diverged) == (2, 0.5, 2)
    assert (by_label["1"].mean, by_label["1"].failures, by_label["1"].failure_rate) == (None, 4, 1.0)
    markdown = (out / "summary.md").read_text(encoding="utf-8")
    assert "| 0 | 62.5 ± 10.6 | 55.0 | 70.0 | 2/4 (50%) | 4 (2 diverged) |" in markdown
    assert "| 1 | no score (every run diverged) | – | – | 4/4 (100%) | 4 (4 diverged) |" in markdown
    assert "over the runs with a score (a run that diverged has none, and counts as failed)" in markdown
    assert "Failed: runs that diverged" in markdown
    with open(out / "summary.csv", encoding="utf-8") as f:
        table = {row["setting"]: row for row in csv.DictReader(f)}
    assert (table["0"]["n_seeds"], table["0"]["n_scored"], table["0"]["diverged"], table["0"]["failures"]) == \
        ("4", "2", "2", "2")
    assert (table["1"]["mean"], table["1"]["std"], table["1"]["failure_rate"]) == ("", "", "1.0")
    assert (out / "summary.png").read_bytes().startswith(PNG_SIGNATURE)

    again = reinit_sweep.main(sweep_argv(data_dir, out, "0,1", "1-4"))  # a diverged run is a result: kept
    assert (again.ran, again.skipped) == (0, 8)


def test_a_run_that_fails_otherwise_stops_the_sweep_and_keeps_the_finished_runs(tmp_path, data_dir,
                                                                                  fake_run_classifier):
    out = tmp_path / "sweep"
    with pytest.raises(SweepError, match=r"the run failed on worker local \S+ \(setting 0, seed 5, exit 2: "
                                         r"run_classifier.py: error: --data_dir: no train.tsv\); its whole output "
                                         r"is in .*seed-5\.attempt-.*run.log"):
        reinit_sweep.main(sweep_argv(data_dir, out, "0", "4,5,6"))
    assert [(r["seed"], r["status"]) for r in results_of(out)["runs"]] == [(4, "finished")]
    (failed,) = (out / "runs" / "0").glob("seed-5.attempt-*")  # kept, with its log, for reading
    assert (failed / "run.log").read_text().endswith("error: --data_dir: no train.tsv\n")


# ---- secrets in model URLs -----------------------------------------------------------------------------

class ModelFolderHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the MiniLM package, its checkpoint at /model/ (the query string is ignored, as by a server
    that checks a signed URL)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(minilm_dir().parent), **kwargs)  # .../model/ is the folder

    def log_message(self, *args):
        pass


def test_model_url_secrets_are_redacted_in_records_and_compared_redacted(tmp_path, data_dir, fake_run, monkeypatch,
                                                                         capsys):
    monkeypatch.setenv("BERT_READ_CACHE", str(tmp_path / "cache"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ModelFolderHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://user:s3cr3t-token@127.0.0.1:{server.server_port}/model/?sig=abc123"
        out = tmp_path / "sweep"
        argv = sweep_argv(data_dir, out, "0", "1", "--", "--config_name", url)
        argv[argv.index("--model_name_or_path") + 1] = url
        reinit_sweep.main(argv)
        assert argv_value(fake_run.calls[0], "--model_name_or_path") == url  # the run itself gets the secret
        redacted = f"http://<redacted>@127.0.0.1:{server.server_port}/model/?<redacted>"
        saved = results_of(out)
        assert saved["sweep"]["model_name_or_path"] == redacted
        assert argv_value(saved["runs"][0]["argv"], "--model_name_or_path") == redacted
        assert saved["sweep"]["extra_args"] == ["--config_name", redacted]
        written = "".join(path.read_text(encoding="utf-8", errors="replace") for path in out.rglob("*")
                          if path.is_file() and path.suffix in (".json", ".md", ".csv", ".log"))
        for secret in ("s3cr3t", "abc123"):
            assert secret not in written and secret not in capsys.readouterr().out

        # Another token for the same folder is the same sweep (compared redacted); another folder is not.
        other_token = url.replace("s3cr3t-token", "n3w-token").replace("abc123", "def456")
        argv = sweep_argv(data_dir, out, "0", "1,2", "--", "--config_name", other_token)
        argv[argv.index("--model_name_or_path") + 1] = other_token
        assert reinit_sweep.main(argv).ran == 1
        argv[argv.index("--model_name_or_path") + 1] = other_token.replace("/model/", "/model/../model/")
        with pytest.raises(SweepError, match=r"model_name_or_path: 'http://<redacted>@127.0.0.1:\d+/model/\?<redacted>'"
                                             r" there, 'http://<redacted>@127.0.0.1:\d+/model/../model/\?<redacted>'"):
            reinit_sweep.main(argv)
        assert "n3w" not in capsys.readouterr().out
    finally:
        server.shutdown()
        server.server_close()


# ---- the training subset -------------------------------------------------------------------------------

def test_downsample_keeps_class_shares_and_lines(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    lines = [f"{label}\t{label} example {i}\n" for label, count in (("a", 60), ("b", 30), ("c", 10))
             for i in range(count)]
    (source / "train.tsv").write_text("label\ttext\n" + "".join(lines), encoding="utf-8")
    (source / "dev.tsv").write_text("label\ttext\na\tx\nc\ty\n", encoding="utf-8")

    out = tmp_path / "subset"
    folder, size = sweep_data.downsample("generic", str(source), 15, 42, str(out), {})
    assert (folder, size) == (str(out), 15)
    written = (out / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    assert written[0] == "label\ttext\n" and len(written) == 16
    kept = written[1:]
    assert [line.split("\t")[0] for line in kept].count("a") == 9  # the docstring's worked example: 9, 5, 1
    assert [line.split("\t")[0] for line in kept].count("b") == 5
    assert [line.split("\t")[0] for line in kept].count("c") == 1
    assert kept == [line for line in lines if line in kept]  # lines of the source, in its order
    assert (out / "dev.tsv").read_bytes() == (source / "dev.tsv").read_bytes()

    first_mtime = (out / "train.tsv").stat().st_mtime_ns
    sweep_data.downsample("generic", str(source), 15, 42, str(out), {})
    assert (out / "train.tsv").stat().st_mtime_ns == first_mtime  # same draw, file left alone
    sweep_data.downsample("generic", str(source), 15, 7, str(tmp_path / "other"), {})
    assert (tmp_path / "other" / "train.tsv").read_text(encoding="utf-8") != "".join(written)
    assert sweep_data.downsample("generic", str(source), 0, 42, str(tmp_path / "all"), {}) == (str(source), 100)


# ---- the plot ------------------------------------------------------------------------------------------

def test_without_matplotlib_the_plot_is_skipped_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    (tmp_path / "results.json").write_text(json.dumps(hand_written_results(HAND_RUNS)), encoding="utf-8")
    reinit_sweep.main(["--output_dir", str(tmp_path), "--report_only"])
    assert "matplotlib is not installed: skipping" in capsys.readouterr().out
    assert (tmp_path / "summary.md").exists() and (tmp_path / "summary.csv").exists()
    assert not (tmp_path / "summary.png").exists()


# ---- one real sweep ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A real sweep: MiniLM, 24 training tweets, 1 epoch of batch 8, settings 0 and 1+pooler+bertadam, seeds
    1 and 2. Models are kept so that the next test can compare weights. Returns (output folder, printed text)."""
    root = tmp_path_factory.mktemp("tiny_sweep")
    data = write_tweets(root / "tweets")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        reinit_sweep.main(sweep_argv(data, root / "sweep", "0,1+pooler+bertadam", "1,2", "--keep_models"))
    return root / "sweep", printed.getvalue(), data


def test_real_tiny_sweep_writes_results_table_and_plot(tiny_sweep):
    out, printed, _ = tiny_sweep
    runs = results_of(out)["runs"]
    assert [(r["setting"], r["seed"]) for r in runs] == [("0", 1), ("1+pooler+bertadam", 1), ("0", 2),
                                                         ("1+pooler+bertadam", 2)]
    for record in runs:
        assert "--group_by_length" in record["argv"]  # the sweep's default batching
        assert set(record["metrics"]) == {"acc"} and 0.0 <= record["score"] <= 1.0
        assert record["score"] == record["metrics"]["acc"] and record["run_seconds"] > 0
        run_dir = out / record["output_dir"]
        assert json.loads((run_dir / "eval_results.json").read_text())["acc"] == record["score"]
        assert "Eval results final" in (run_dir / "run.log").read_text(encoding="utf-8")
    # One feature cache for the whole sweep: the first run builds it, the others read it (with --workers the
    # others wait for it: tests/test_length_buckets.py).
    logs = [(out / record["output_dir"] / "run.log").read_text(encoding="utf-8") for record in runs]
    assert "Saved 24 features into cache file" in logs[0]
    assert all("Loading features from cache file" in log and "Saved 24 features" not in log for log in logs[1:])

    # The setting reached the model: 1+pooler+bertadam re-initialized layer 5 (the top of 6) and the pooler and
    # trained with BERTAdam; 0 re-initialized nothing and used AdamW.
    trained_with = json.loads((out / "runs" / "1+pooler+bertadam" / "seed-1" / "training_args.json").read_text())
    assert trained_with["use_bertadam"] is True
    assert json.loads((out / "runs" / "0" / "seed-1" / "training_args.json").read_text())["use_bertadam"] is False
    keys = json.loads((out / "runs" / "1+pooler+bertadam" / "seed-1" / "reinit_keys.json").read_text())["resolved_keys"]
    top, pooler = "bert.encoder.layer.5.", "bert.pooler."
    assert all(key.startswith((top, pooler)) for key in keys)
    assert any(key.startswith(top) for key in keys) and any(key.startswith(pooler) for key in keys)
    assert json.loads((out / "runs" / "0" / "seed-1" / "reinit_keys.json").read_text())["resolved_keys"] == []
    train_lines = (out / "data_train24_seed42" / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert train_lines[0] == "label\ttext" and len(train_lines) == 25

    markdown = (out / "summary.md").read_text(encoding="utf-8")
    assert "| 0 | " in markdown and "| 1+pooler+bertadam | " in markdown and markdown.count(" | 2 |") == 2
    with open(out / "summary.csv", encoding="utf-8") as f:
        assert [row["setting"] for row in csv.DictReader(f)] == ["0", "1+pooler+bertadam"]
    png = out / "summary.png"
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.stat().st_size > 0 and png.read_bytes()[:8] == PNG_SIGNATURE
    else:
        assert "matplotlib is not installed: skipping" in printed and not png.exists()


def test_real_tiny_sweep_writes_the_curves_of_its_runs(tiny_sweep):
    """3 steps a run, so every step is logged; curves.csv holds, per setting and step, the mean, min and max
    over the two seeds of the loss each run wrote into its own train_log.jsonl."""
    out, _, _ = tiny_sweep
    losses = {}  # (setting, step) -> [loss of each seed]
    for record in results_of(out)["runs"]:
        for line in (out / record["output_dir"] / "train_log.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if "loss" in row:
                losses.setdefault((record["setting"], row["step"]), []).append(row["loss"])
    assert sorted(losses) == [(s, step) for s in ("0", "1+pooler+bertadam") for step in (1, 2, 3)]
    with open(out / "curves.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["setting", "step", "loss_mean", "loss_min", "loss_max"]
    assert [(row["setting"], int(row["step"])) for row in rows] == sorted(losses)
    for row in rows:
        seeds = losses[(row["setting"], int(row["step"]))]
        assert len(seeds) == 2
        assert float(row["loss_mean"]) == pytest.approx(sum(seeds) / 2, abs=1e-6)
        assert float(row["loss_min"]) == pytest.approx(min(seeds), abs=1e-6)
        assert float(row["loss_max"]) == pytest.approx(max(seeds), abs=1e-6)
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "curves.png").read_bytes()[:8] == PNG_SIGNATURE


def test_a_run_gives_the_same_weights_inside_a_sweep_and_alone(tiny_sweep, tmp_path):
    """1+pooler+bertadam with seed 2 ran last in the sweep above, after three other runs. Run alone in a fresh sweep
    it must give the same weights, bit for bit: a sweep's result does not depend on what else it ran."""
    out, _, data = tiny_sweep
    reinit_sweep.main(sweep_argv(data, tmp_path / "alone", "1+pooler+bertadam", "2", "--keep_models"))
    after_others = load_file(str(out / "runs" / "1+pooler+bertadam" / "seed-2" / "model.safetensors"))
    alone = load_file(str(tmp_path / "alone" / "runs" / "1+pooler+bertadam" / "seed-2" / "model.safetensors"))
    assert after_others.keys() == alone.keys()
    assert all(torch.equal(after_others[name], alone[name]) for name in alone)
    assert results_of(tmp_path / "alone")["runs"][0]["score"] == results_of(out)["runs"][3]["score"]
