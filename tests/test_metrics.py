"""Metrics against values worked out by hand (the arithmetic is in the comments)."""
import math

import numpy as np
import pytest
import torch

from bert_read_step_to_step.metrics import compute_metrics, primary_metric


def test_accuracy():
    # 3 of 4 predictions match.
    assert compute_metrics("acc", [0, 1, 1, 0], [0, 1, 0, 0]) == {"acc": 0.75}


def test_acc_and_f1():
    # preds  1 1 0 0 1
    # labels 1 0 0 1 1   -> right at positions 0, 2, 4: acc 3/5
    # class 1: TP = 2 (positions 0, 4), FP = 1 (position 1), FN = 1 (position 3)
    # precision 2/3, recall 2/3, F1 = 2/3
    result = compute_metrics("mrpc", np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert result["acc"] == pytest.approx(0.6)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["acc_and_f1"] == pytest.approx((0.6 + 2 / 3) / 2)


def test_matthews_correlation():
    # preds 1 1 0 0, labels 1 0 0 0: TP 1, FP 1, TN 2, FN 0
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 2 / sqrt(2*1*3*2) = 2 / sqrt(12)
    assert compute_metrics("cola", [1, 1, 0, 0], [1, 0, 0, 0])["mcc"] == pytest.approx(2 / math.sqrt(12))
    # Always answering the majority class earns accuracy, but no correlation.
    assert compute_metrics("mcc", [1, 1, 1, 1], [1, 1, 1, 0]) == {"mcc": 0.0}
    assert compute_metrics("acc", [1, 1, 1, 1], [1, 1, 1, 0]) == {"acc": 0.75}


def test_pearson_and_spearman():
    # x = 1 2 3 4 (mean 2.5), y = x^2 = 1 4 9 16 (mean 7.5)
    # dx = -1.5 -0.5 0.5 1.5; dy = -6.5 -3.5 1.5 8.5
    # sum dx*dy = 9.75 + 1.75 + 0.75 + 12.75 = 25; sum dx^2 = 5; sum dy^2 = 129
    # Pearson = 25 / sqrt(5 * 129); Spearman = 1 (same order)
    result = compute_metrics("sts-b", torch.tensor([1.0, 2.0, 3.0, 4.0]), [1.0, 4.0, 9.0, 16.0])
    pearson = 25 / math.sqrt(645)
    assert result["pearson"] == pytest.approx(pearson)
    assert result["spearman"] == pytest.approx(1.0)
    assert result["corr"] == pytest.approx((pearson + 1.0) / 2)
    # Reversed order: both correlations are -1.
    reversed_ = compute_metrics("pearson_and_spearman", [3.0, 2.0, 1.0], [1.0, 2.0, 3.0])
    assert reversed_["pearson"] == pytest.approx(-1.0) and reversed_["spearman"] == pytest.approx(-1.0)


def test_primary_metric():
    assert primary_metric("cola") == "mcc"
    assert primary_metric("sts-b") == "corr"
    assert primary_metric("qqp") == primary_metric("acc_and_f1") == "acc_and_f1"
    assert primary_metric("mnli-mm") == primary_metric("generic") == primary_metric("tnews") == "acc"


def test_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        compute_metrics("acc", [1, 0], [1])
    with pytest.raises(ValueError, match="no predictions"):
        compute_metrics("acc", [], [])
    with pytest.raises(ValueError, match="neither a metric"):
        compute_metrics("accuracy", [1], [1])
