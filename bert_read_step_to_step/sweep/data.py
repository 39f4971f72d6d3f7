"""The re-init sweep's training data: one fixed, class-balanced subset of the task's training file.

In:  a task, its data folder, the number of training examples to keep and the seed that draws them.
Out: a Subset (the folder the runs read, its example count, the bytes of its files and their hashes),
     written by write_subset only after main.py has compared the hashes with the ones a finished
     sweep recorded, so a sweep refused for changed data leaves that sweep's files as they were; and the
     majority-class baseline that report.py counts failed runs against.
"""
import csv
import hashlib
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bert_read_step_to_step import prepare_demo_data
from bert_read_step_to_step.metrics import compute_metrics, primary_metric
from bert_read_step_to_step.sweep.plan import SweepError
from bert_read_step_to_step.tasks import get_labels, get_task, read_examples
from transformers.file_utils import write_atomically

@dataclass
class Subset:
    """The training data every run of a sweep reads: `folder`, holding `train_examples` training examples.
    `files` maps file names to the bytes that must be in `folder` (the drawn training file and the dev file);
    it is empty when the runs read the task's own folder as it is."""
    folder: str
    train_examples: int
    files: dict

    def sha1(self, name):
        """The content hash of file `name` as the runs will read it (planned bytes or the file on disk)."""
        if name in self.files:
            return hashlib.sha1(self.files[name]).hexdigest()
        return file_sha1(os.path.join(self.folder, name))


def plan_subset(task_name, data_dir, train_size, data_seed, out_dir, generic_options):
    """The Subset with `train_size` examples of the task's training file and a copy of its dev file, in
    out_dir; nothing is written yet, so the caller can compare the hashes with a finished sweep's first.

    The examples are drawn once, with `data_seed`, and every run of the sweep trains on the same ones: the
    sweep compares settings, so the data must not change between them. Classes keep their proportions
    (for a regression task the draw is plain random). Kept lines are written byte for byte in their original
    order, in the task's own layout, so the task reads the new folder exactly as it reads the original:
    for the demo that is a generic-task train.tsv with the header "label<TAB>text".

    train_size 0, or not smaller than the file, means the whole training set: then the runs read the
    original folder as it is.
    """
    spec = get_task(task_name, **generic_options)
    examples = read_examples(spec, data_dir, "train")  # also checks the file: a bad line fails here, named
    if train_size == 0 or train_size >= len(examples):
        if train_size:
            print(f"--train_size {train_size}: the training file has only {len(examples)} examples; using all")
        return Subset(data_dir, len(examples), {})

    train_path = os.path.join(data_dir, spec.files["train"])
    header, records = read_records(train_path, spec)
    if len(records) != len(examples):
        raise SweepError(f"{train_path}: found {len(records)} records but the task reads {len(examples)} "
                         f"examples, so examples cannot be matched to lines for downsampling")
    labels = None if spec.output_mode == "regression" else [example.label for example in examples]
    keep = choose_subset(len(records), labels, train_size, data_seed)
    with open(os.path.join(data_dir, spec.files["dev"]), "rb") as f:
        dev_bytes = f.read()
    return Subset(out_dir, len(keep), {spec.files["train"]: join_records(header, [records[i] for i in keep], spec),
                                       spec.files["dev"]: dev_bytes})


def write_subset(subset):
    """Put the planned files in subset.folder (a file already holding the same bytes is left alone)."""
    if subset.files:
        os.makedirs(subset.folder, exist_ok=True)
    for name, data in subset.files.items():
        write_if_changed(os.path.join(subset.folder, name), data)


def downsample(task_name, data_dir, train_size, data_seed, out_dir, generic_options):
    """plan_subset and write_subset in one: returns (folder the runs read, number of training examples)."""
    subset = plan_subset(task_name, data_dir, train_size, data_seed, out_dir, generic_options)
    write_subset(subset)
    return subset.folder, subset.train_examples


def read_records(path, spec):
    """(header, records) of a data file: one record per example, in file order.

    Plain files (every task in the table): a record is a non-blank line, as bytes, so that it is written
    back unchanged. Quoted CSV (the generic task with --file_format csv): a record is a list of fields,
    because one record may span lines. The header is the first record when the task's files have one.
    """
    if spec.csv_quoting:
        with open(path, encoding="utf-8", newline="") as f:
            records = [fields for fields in csv.reader(f, delimiter=spec.delimiter) if fields]
    else:
        with open(path, "rb") as f:
            records = [line if line.endswith(b"\n") else line + b"\n" for line in f if line.strip(b"\r\n")]
    if spec.layout.has_header and records:
        return records[0], records[1:]
    return None, records


def join_records(header, records, spec):
    """The bytes of a file holding `header` (None: no header line) and then `records`."""
    rows = ([header] if header is not None else []) + records
    if not spec.csv_quoting:
        return b"".join(rows)
    text = io.StringIO()
    csv.writer(text, delimiter=spec.delimiter, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


def choose_subset(num_records, labels, size, seed):
    """Sorted indexes of `size` records. With labels, each class gets its share of `size`, rounded so the
    shares add up to `size` (whoever lost most to rounding down gets the spare places). Worked example:
    labels 60 x "a", 30 x "b", 10 x "c" and size 15 -> exact shares 9, 4.5, 1.5 -> 9 "a", 5 "b", 1 "c"
    (b and c tie on the remainder 0.5; the tie goes to the label that sorts first)."""
    rng = random.Random(seed)
    if labels is None:
        return sorted(rng.sample(range(num_records), size))
    by_label = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    shares = prepare_demo_data.proportional_quotas({label: len(rows) for label, rows in by_label.items()}, size)
    chosen = []
    for label in sorted(by_label):
        chosen += rng.sample(by_label[label], shares[label])
    return sorted(chosen)


def file_sha1(path):
    """The file's content hash: results.json keeps it, so a resumed sweep can tell if the data changed."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_if_changed(path, data):
    """Write `data` unless the file already holds exactly it. A resumed sweep then leaves the file's
    modification time alone, and run_classifier's feature cache (keyed on it) stays valid."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return
    write_atomically(path, lambda temp: Path(temp).write_bytes(data))


def majority_baseline(task_name, data_dir, generic_options):
    """What a model that always predicts the dev set's most frequent label scores on it: {"label", "share",
    "score" (the task's primary metric)}; None for a regression task, which has no majority class.

    Zhang et al. count a run as failed when its dev score is no better than this: fine-tuning that learned
    nothing the label counts did not already say. Worked example: dev labels a a a b -> label "a",
    share 0.75, and for accuracy score 0.75; for MCC the score of a constant prediction is 0.
    """
    spec = get_task(task_name, **generic_options)
    if spec.output_mode == "regression":
        return None
    label_list = get_labels(spec, data_dir)
    labels = [label_list.index(example.label) for example in read_examples(spec, data_dir, "dev")]
    counts = [labels.count(index) for index in range(len(label_list))]
    majority = counts.index(max(counts))  # a tie goes to the label listed first
    score = compute_metrics(spec.metric, np.full(len(labels), majority), np.array(labels))[primary_metric(task_name)]
    return {"label": label_list[majority], "share": counts[majority] / len(labels), "score": score}
