"""Reading path, stop 9 (README): turn predictions and gold labels into the task's scores.

In:  a metric name ("acc", "acc_and_f1", "mcc", "pearson_and_spearman") or a task name (whose row in
     tasks.TASKS names its metric), predicted label ids (classification) or scores (regression),
     and the gold labels in the same form.
Out: a dict of floats, e.g. {"acc": 0.84, "f1": 0.88, "acc_and_f1": 0.86}.

Which number decides "this run is better than that one" is `primary_metric(task)`.
Why different tasks get different metrics:
  - CoLA is unbalanced (about 70% acceptable), so accuracy flatters a model that always says
    "acceptable"; Matthews correlation gives that model 0.
  - MRPC and QQP are unbalanced pairs tasks; GLUE reports F1 of the positive class next to accuracy.
  - STS-B predicts a similarity score, so it is scored by correlation with the gold scores:
    Pearson (linear) and Spearman (rank order).
"""
import numpy as np

# scipy and scikit-learn are imported inside compute_metrics, by the metrics that need them: together they
# take longer to import than torch's first second, and accuracy (most tasks, the demo) needs neither.

# metric name -> the key of its result that compare runs
PRIMARY_KEYS = {
    "acc": "acc",
    "acc_and_f1": "acc_and_f1",
    "mcc": "mcc",
    "pearson_and_spearman": "corr",
}


def _metric_name(metric_name_or_task):
    if metric_name_or_task in PRIMARY_KEYS:
        return metric_name_or_task
    from .tasks import get_task  # a task name: its row says which metric scores it
    try:
        return get_task(metric_name_or_task).metric
    except ValueError as err:
        raise ValueError(f"{metric_name_or_task!r} is neither a metric ({', '.join(PRIMARY_KEYS)}) "
                         f"nor a task: {err}") from None


def primary_metric(metric_name_or_task):
    """The key of compute_metrics' result used to pick the best run, e.g. "mcc" for cola."""
    return PRIMARY_KEYS[_metric_name(metric_name_or_task)]


def compute_metrics(metric_name_or_task, preds, labels):
    """Scores of `preds` against `labels` (lists, numpy arrays or tensors of equal length)."""
    name = _metric_name(metric_name_or_task)
    preds, labels = np.asarray(preds), np.asarray(labels)
    if preds.shape != labels.shape or preds.ndim != 1:
        raise ValueError(f"preds and labels must be 1-D and of equal length, "
                         f"got shapes {preds.shape} and {labels.shape}")
    if len(preds) == 0:
        raise ValueError("no predictions to score")

    if name == "acc":
        return {"acc": _accuracy(preds, labels)}
    if name == "acc_and_f1":
        acc = _accuracy(preds, labels)
        # F1 of class 1 ("paraphrase" / "duplicate"): harmonic mean of precision and recall.
        from sklearn.metrics import f1_score
        f1 = float(f1_score(y_true=labels, y_pred=preds))
        return {"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}
    if name == "mcc":
        from sklearn.metrics import matthews_corrcoef
        return {"mcc": float(matthews_corrcoef(labels, preds))}
    if name == "pearson_and_spearman":
        from scipy.stats import pearsonr, spearmanr
        pearson = float(pearsonr(preds, labels)[0])
        spearman = float(spearmanr(preds, labels)[0])
        return {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}
    raise AssertionError(f"metric {name!r} is listed in PRIMARY_KEYS but not computed")


def _accuracy(preds, labels):
    return float((preds == labels).mean())
