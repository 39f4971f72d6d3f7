"""The sweep's training curves (bert_read_step_to_step/sweep/curves.py): curves.csv over seeds, curves.png.

The inputs are hand-written train_log.jsonl files in the layout run_classifier writes (training rows with
step, epoch, loss, learning_rate, grad_norm; evaluation rows with eval_<metric> and no bare loss), so every
expected mean, min and max below is worked out by hand from them.
"""
import csv
import json

import pytest

from bert_read_step_to_step import reinit_sweep
from bert_read_step_to_step.sweep import curves
from bert_read_step_to_step.sweep.plan import Setting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def training_row(step, loss):
    return {"step": step, "epoch": 0.5 * step, "loss": loss, "learning_rate": 1e-4, "grad_norm": 1.5}


def write_sweep(folder, runs):
    """results.json with one record per (setting, seed, status, train_log rows or None), and each run's
    train_log.jsonl (none when its rows are None)."""
    records = []
    for setting, seed, status, rows in runs:
        output_dir = f"runs/{setting}/seed-{seed}"
        record = {"setting": setting, "seed": seed, "status": status, "metrics": {}, "primary_metric": "acc",
                  "score": 0.5 if status == "finished" else None, "output_dir": output_dir}
        if status == "lost":
            del record["output_dir"]
            record["lost"] = "its worker died"
        records.append(record)
        if rows is not None:
            (folder / output_dir).mkdir(parents=True)
            (folder / output_dir / "train_log.jsonl").write_text(
                "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    sweep = {"task_name": "generic", "data_dir": "/data/tweets", "model_name_or_path": "/models/minilm/model",
             "train_size": 500, "data_seed": 42, "epochs": 2.0, "max_seq_length": 64, "batch_size": 16,
             "learning_rate": 1e-4, "extra_args": []}
    document = {"format": 1, "sweep": sweep, "primary_metric": "acc",
                "data": {"train_dir": "/out/data", "train_examples": 500}, "runs": records}
    (folder / "results.json").write_text(json.dumps(document), encoding="utf-8")


def read_csv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.reader(f))


def test_curves_csv_holds_mean_min_and_max_over_seeds_per_step(tmp_path):
    evaluation = {"step": 3, "eval_acc": 0.61, "eval_loss": 0.93}  # no bare "loss": not a training point
    write_sweep(tmp_path, [
        ("0", 1, "finished", [training_row(1, 1.10), training_row(2, 0.90), evaluation, training_row(3, 0.70)]),
        ("0", 2, "finished", [training_row(1, 1.30), training_row(2, 0.70), training_row(3, 0.50)]),
        ("2+pooler", 1, "finished", [training_row(1, 1.00), training_row(2, 0.80)]),
        # Left out: a diverged run (its loss went to infinity) and a lost run (no folder at all).
        ("2+pooler", 2, "diverged", [training_row(1, 9.0), {"step": 2, "loss": float("inf")}]),
        ("2+pooler", 3, "lost", None),
    ])
    reinit_sweep.main(["--output_dir", str(tmp_path), "--report_only"])

    rows = read_csv(tmp_path / "curves.csv")
    assert rows[0] == ["setting", "step", "loss_mean", "loss_min", "loss_max"]
    table = [(setting, int(step), float(mean), float(low), float(high)) for setting, step, mean, low, high in rows[1:]]
    # Setting 0, over seeds 1 and 2: step 1 (1.10 + 1.30) / 2 = 1.20, step 2 (0.90 + 0.70) / 2 = 0.80,
    # step 3 (0.70 + 0.50) / 2 = 0.60. Setting 2+pooler: only seed 1 finished, so mean = min = max.
    expected = [("0", 1, 1.20, 1.10, 1.30), ("0", 2, 0.80, 0.70, 0.90), ("0", 3, 0.60, 0.50, 0.70),
                ("2+pooler", 1, 1.00, 1.00, 1.00), ("2+pooler", 2, 0.80, 0.80, 0.80)]
    assert [row[:2] for row in table] == [row[:2] for row in expected]
    for got, want in zip(table, expected):
        assert got[2:] == pytest.approx(want[2:])
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_SIGNATURE)


def test_aggregate_follows_its_worked_example():
    rows = curves.aggregate([(Setting(0, False), {1: 0.9, 2: 0.7}), (Setting(0, False), {1: 1.1, 2: 0.5})])
    assert [row[:2] for row in rows] == [("0", 1), ("0", 2)]
    assert rows[0][2:] == pytest.approx((1.0, 0.9, 1.1)) and rows[1][2:] == pytest.approx((0.6, 0.5, 0.7))


def test_without_train_logs_the_sweep_says_so_once_and_writes_no_curves(tmp_path, capsys):
    write_sweep(tmp_path, [("0", 1, "finished", None), ("0", 2, "finished", None)])
    reinit_sweep.main(["--output_dir", str(tmp_path), "--report_only"])
    printed = capsys.readouterr().out
    assert printed.count("train_log.jsonl") == 1 and "there are no curves.csv and curves.png" in printed
    assert not (tmp_path / "curves.csv").exists() and not (tmp_path / "curves.png").exists()
    assert (tmp_path / "summary.md").exists()


def test_a_damaged_train_log_names_its_line_and_leaves_only_that_run_out(tmp_path, capsys):
    write_sweep(tmp_path, [("0", 1, "finished", [training_row(1, 1.0)]),
                           ("0", 2, "finished", [training_row(1, 3.0)])])
    damaged = tmp_path / "runs" / "0" / "seed-2" / "train_log.jsonl"
    damaged.write_text(damaged.read_text() + "{not json\n", encoding="utf-8")
    reinit_sweep.main(["--output_dir", str(tmp_path), "--report_only"])
    assert f"{damaged}:2: not a JSON line" in capsys.readouterr().out
    assert read_csv(tmp_path / "curves.csv")[1:] == [["0", "1", "1.0", "1.0", "1.0"]]
