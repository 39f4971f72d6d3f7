"""weight_change: the relative change per module, checked against numbers worked out by hand, and the report a
real training run writes (checked against the saved weights and the checkpoint, computed here directly)."""
import importlib.util
import json
import logging
import math
import os
import sys

import pytest
import torch
from safetensors.torch import save_file

from _classifier_runs import balanced_tweets, common_args, run_main, saved_weights, write_generic_task
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import minilm_dir
from bert_read_step_to_step import weight_change
from transformers.file_utils import replace_path


def test_two_folders_compare_module_by_module_as_worked_out_by_hand(tmp_path, capsys):
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    # A bare encoder's names (no "bert."), in safetensors, with a position_ids buffer that is not a weight.
    save_file({"embeddings.word_embeddings.weight": torch.tensor([[3.0, 4.0]]),
               "embeddings.position_ids": torch.arange(2),
               "encoder.layer.0.attention.self.query.weight": torch.ones(2, 2),
               "encoder.layer.0.output.dense.bias": torch.zeros(4),
               "encoder.layer.1.output.dense.bias": torch.tensor([2.0, 0.0]),
               "pooler.dense.weight": torch.eye(2)}, str(before / "model.safetensors"))
    # A task model's names ("bert." and a head), as a PyTorch .bin.
    torch.save({"bert.embeddings.word_embeddings.weight": torch.tensor([[3.0, 5.0]]),
                "bert.encoder.layer.0.attention.self.query.weight": 2 * torch.ones(2, 2),
                "bert.encoder.layer.0.output.dense.bias": torch.tensor([0.0, 0.0, 0.0, 3.0]),
                "bert.encoder.layer.1.output.dense.bias": torch.tensor([2.0, 0.0]),
                "bert.pooler.dense.weight": torch.eye(2),
                "classifier.weight": torch.ones(3, 2)}, str(after / "pytorch_model.bin"))
    report = weight_change.main([str(before), str(after), "--out_dir", str(tmp_path / "report")])

    rows = {row["module"]: row for row in report["modules"]}
    assert list(rows) == ["embeddings", "layer 0", "layer 1", "pooler"]
    # embeddings: ‖[[0, 1]]‖ / ‖[[3, 4]]‖ = 1 / 5.
    assert rows["embeddings"]["relative_change"] == pytest.approx(0.2)
    # layer 0: the query weight moves by ones(2, 2) (squared norm 4), the bias by [0, 0, 0, 3] (9); the module's
    # squared norm before is 4 + 0: sqrt(13) / sqrt(4).
    assert rows["layer 0"]["relative_change"] == pytest.approx(math.sqrt(13) / 2)
    assert rows["layer 0"]["tensors"] == 2
    assert rows["layer 1"]["relative_change"] == 0.0 and rows["pooler"]["relative_change"] == 0.0
    assert report["only_in_after"] == ["classifier.weight"] and report["only_in_before"] == []
    assert json.loads((tmp_path / "report" / "weight_change.json").read_text()) == report
    printed = capsys.readouterr().out
    assert "layer 0" in printed
    png = tmp_path / "report" / "weight_change.png"
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib is not installed: skipping" in printed and not png.exists()


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(weight_change.UserError, match="no model.safetensors or pytorch_model.bin"):
        weight_change.main([str(tmp_path), str(tmp_path)])


def test_a_training_run_reports_each_module_from_where_it_started(tmp_path):
    data = write_generic_task(tmp_path / "data", balanced_tweets(8), balanced_tweets(3, start=6))
    out = tmp_path / "out"
    run_main(common_args(data, out, max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "2", "--max_steps", "2", "--save_steps", "0",
        "--learning_rate", "1e-3", "--seed", "3", "--reinit_layers", "1"])
    report = json.loads((out / "weight_change.json").read_text())
    rows = {row["module"]: row for row in report["modules"]}
    assert list(rows) == ["embeddings"] + [f"layer {i}" for i in range(6)] + ["pooler", "head"]
    assert [rows[module]["measured_from"] for module in ("layer 4", "layer 5", "pooler", "head")] == \
        ["pre-trained", "fresh init", "pre-trained", "fresh init"]
    # Layer 0 was loaded: its change is measured from the checkpoint's own tensors.
    checkpoint, saved = saved_weights(minilm_dir()), saved_weights(out)
    names = [name for name in checkpoint if name.startswith("encoder.layer.0.")]
    change = math.sqrt(sum(float(((saved["bert." + n].double() - checkpoint[n].double()) ** 2).sum()) for n in names))
    size = math.sqrt(sum(float((checkpoint[n].double() ** 2).sum()) for n in names))
    assert rows["layer 0"]["relative_change"] == pytest.approx(change / size, rel=1e-9)
    assert 0 < rows["layer 0"]["relative_change"] < 1


def test_two_folders_name_the_layers_the_run_re_initialized(tmp_path, capsys):
    """Pre-trained MiniLM against a run that re-initialized its top layer: that layer's row says it was re-drawn
    by the run (its change includes the new draw), no row claims "pre-trained", and the picture's legend has
    exactly the colours of its bars."""
    data = write_generic_task(tmp_path / "data", balanced_tweets(8), balanced_tweets(3, start=6))
    out = tmp_path / "out"
    run_main(common_args(data, out, max_seq_length=16) + [
        "--do_train", "--per_gpu_train_batch_size", "2", "--max_steps", "1", "--save_steps", "0",
        "--learning_rate", "1e-3", "--seed", "3", "--reinit_layers", "1"])
    long_name = tmp_path / ("a-long-folder-name-for-a-fine-tuned-run-" * 3)
    replace_path(out, long_name)
    report = weight_change.main([str(minilm_dir()), str(long_name), "--out_dir", str(tmp_path / "report")])
    rows = {row["module"]: row["measured_from"] for row in report["modules"]}
    assert rows["layer 5"] == weight_change.REINIT_IN_AFTER
    assert {rows[f"layer {i}"] for i in range(5)} == {weight_change.FROM_BEFORE}
    assert weight_change.FROM_PRETRAINED not in rows.values()
    assert "re-initialized by the after run" in capsys.readouterr().out

    figure = weight_change.plot_report(report, f"What changed from {minilm_dir()} to {long_name}")
    axes = figure.axes[0]
    bar_colors = {tuple(bar.get_facecolor()) for bar in axes.patches[:len(report["modules"])]}
    legend = axes.get_legend()
    legend_colors = {tuple(patch.get_facecolor()) for patch in legend.get_patches()}
    assert bar_colors == legend_colors and len(legend_colors) == 2
    assert sorted(text.get_text() for text in legend.get_texts()) == sorted(
        f"measured from: {kind}" for kind in (weight_change.FROM_BEFORE, weight_change.REINIT_IN_AFTER))
    # The title (a long path) is wrapped, and every line of it lies inside the picture once drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # runs the constrained layout, as savefig does
    title = axes.title.get_window_extent(canvas.get_renderer())
    picture = figure.bbox
    assert title.x0 >= picture.x0 and title.x1 <= picture.x1 and title.y1 <= picture.y1
    assert "\n" in axes.title.get_text()


def test_without_a_reinit_record_the_rows_say_what_they_are_measured_from(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"encoder.layer.0.output.dense.bias": torch.ones(2)}, str(folder / "model.safetensors"))
    report = weight_change.main([str(folder), str(folder)])
    assert [row["measured_from"] for row in report["modules"]] == [weight_change.FROM_BEFORE]
    assert "no reinit_keys.json" in capsys.readouterr().out


def test_without_matplotlib_the_picture_is_a_warning_with_the_install_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    report = {"modules": [], "only_in_before": [], "only_in_after": []}
    with caplog.at_level(logging.WARNING, logger="bert_read_step_to_step.weight_change"):
        weight_change.write_report(str(tmp_path), report, "t")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pip install -r requirements.txt" in warnings[0].getMessage()
    assert (tmp_path / "weight_change.json").is_file() and not (tmp_path / "weight_change.png").exists()


def test_matplotlib_is_a_runtime_requirement():
    from _support import REPO_ROOT

    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("matplotlib") for line in lines)


def test_a_reinit_record_that_is_not_one_is_named(tmp_path):
    save_file({"encoder.layer.0.output.dense.bias": torch.ones(2)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "reinit_keys.json").write_text("[1, 2]")
    with pytest.raises(weight_change.UserError, match="reinit_keys.json: not a reinit record"):
        weight_change.main([str(tmp_path), str(tmp_path)])
