"""The benchmark's sweep section (benchmarks/run.py, figure 9): what it reads from a sweep's results.json and
how it prints a setting's dev scores. The sweeps themselves take ~25 minutes and are not run here."""
import pytest

from benchmarks import sweep

# Two settings, written in the order a sweep appends runs (seed by seed, not setting by setting): three seeds
# of "0" and two of "1+pooler", with run_seconds whose mean (22) is easy to check by hand and differs from their median.
DOCUMENT = {
    "format": 1, "primary_metric": "acc",
    "runs": [
        {"setting": "1+pooler", "seed": 2, "score": 0.50, "metrics": {"acc": 0.50}, "run_seconds": 30.0},
        {"setting": "0", "seed": 3, "score": 0.80, "metrics": {"acc": 0.80}, "run_seconds": 10.0},
        {"setting": "0", "seed": 1, "score": 0.60, "metrics": {"acc": 0.60}, "run_seconds": 20.0},
        {"setting": "1+pooler", "seed": 1, "score": 0.70, "metrics": {"acc": 0.70}, "run_seconds": 40.0},
        {"setting": "0", "seed": 2, "score": 0.70, "metrics": {"acc": 0.70}, "run_seconds": 10.0},
    ],
}


def test_sweep_figures_count_runs_seconds_and_scores_per_setting():
    figures = sweep.sweep_figures(DOCUMENT)
    assert figures["runs"] == 5
    assert figures["primary_metric"] == "acc"
    assert figures["run_seconds"] == [30.0, 10.0, 20.0, 40.0, 10.0]
    assert figures["run_seconds_mean"] == pytest.approx(22.0)  # 110 / 5 (the median would be 20)
    assert list(figures["settings"]) == ["0", "1+pooler"]  # re-init order, not the order runs finished in
    plain = figures["settings"]["0"]
    assert plain["seeds"] == [1, 2, 3]
    assert plain["scores"] == [0.60, 0.70, 0.80]
    # mean 0.7; sample std: sqrt((0.01 + 0 + 0.01) / (3 - 1)) = 0.1 (divided by n - 1, not n)
    assert plain["mean"] == pytest.approx(0.70)
    assert plain["std"] == pytest.approx(0.10)
    assert (plain["min"], plain["max"]) == (0.60, 0.80)
    reinit = figures["settings"]["1+pooler"]
    assert reinit["seeds"] == [1, 2]
    assert reinit["mean"] == pytest.approx(0.60)
    assert reinit["std"] == pytest.approx(0.1414213562)  # sqrt((0.01 + 0.01) / 1)


def test_score_cell_shows_mean_std_and_range_in_points():
    figures = sweep.sweep_figures(DOCUMENT)
    assert sweep.score_cell(figures["settings"]["0"]) == "70.0 ± 10.0 [60.0-80.0]"
    one_seed = sweep.sweep_figures({"primary_metric": "acc", "runs": [DOCUMENT["runs"][0]]})
    assert sweep.score_cell(one_seed["settings"]["1+pooler"]) == "50.0 [50.0-50.0]"  # no std from one seed
