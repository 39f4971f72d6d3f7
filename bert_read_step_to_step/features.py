"""Reading path, stop 5 (README): turn examples into the numbers BERT reads, cache them, batch them.

In:  `InputExample`s from tasks.py and a tokenizer with
     `encode_plus(text_a, text_b, max_length) -> {input_ids, token_type_ids, attention_mask}`.
Out: `InputFeatures` (one per example, unpadded), a cache file on disk so the next run skips the
     tokenizer, and `collate_features`, which pads a batch into tensors of shape [B, L]
     (B batch size, L length of the longest example in the batch).

A worked example, a pair from a Chinese task with max_seq_length=7:

    text_a = "股票", text_b = "突破"
    tokens          [CLS] 股 票 [SEP] 突 破 [SEP]
    input_ids       each token's line number in vocab.txt, counted from 0 ([CLS] is 101 in BERT's vocabs)
    token_type_ids  0     0  0  0     1  1  1      (0: the first text and its [SEP], 1: the second text)
    attention_mask  1     1  1  1     1  1  1      (1: a real token)

The label string becomes its index in the label list ("104" -> 4 for tnews), or a float for regression.

Padding is not done here but per batch: a batch of short tweets is padded to its own longest tweet,
not to max_seq_length, which saves most of the compute when texts are short. Padding positions get
the tokenizer's pad id (0, [PAD], for BERT), attention_mask 0 (the model must not attend to them) and token
type 0, on the right; XLNet pads on the left (see `Padding`).
"""
import hashlib
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Union

import torch
from torch.utils.data import Dataset

from transformers.file_utils import exclusive_lock, resolve_cache_dir, run_entry_point, sha256_of_file, write_atomically

from .tasks import LABELS_FROM_TRAIN_FILE, find_data_file, get_labels, get_task, read_examples

module_logger = logging.getLogger(__name__)

# Label id of an example whose file has no label (GLUE test files). -100 is what
# torch.nn.CrossEntropyLoss ignores by default; regression uses NaN for the same purpose.
NO_LABEL_ID = -100
NUM_EXAMPLES_TO_LOG = 3
FEATURES_LOCK_NAME = ".features.lock"  # in the cache folder: held while a cache file is built
CACHE_FORMAT = 1     # bump when the layout of the cache file changes, so old files are rebuilt


@dataclass
class InputFeatures:
    """One example as numbers, unpadded: all three lists have the example's own length (<= max_seq_length)."""
    input_ids: list
    attention_mask: list
    token_type_ids: list
    label: Union[int, float]


def convert_examples_to_features(examples, tokenizer, max_seq_length, label_list, output_mode,
                                 logger=None):
    """Tokenize every example; map its label to an id (classification) or a float (regression).

    Truncation is the tokenizer's: when a pair is too long, it removes tokens from the longer of the two
    texts first, one at a time, so that a short question keeps its words and a long passage gives up its
    tail. The result, with [CLS] and [SEP]s, is at most max_seq_length long.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3 ([CLS], one token, [SEP]), got {max_seq_length}")
    if output_mode not in ("classification", "regression"):
        raise ValueError(f"output_mode must be 'classification' or 'regression', not {output_mode!r}")
    logger = logger or module_logger
    label_map = {label: i for i, label in enumerate(label_list)}

    features = []
    for index, example in enumerate(examples):
        encoded = tokenizer.encode_plus(example.text_a, example.text_b, max_length=max_seq_length)
        input_ids = list(encoded["input_ids"])
        if len(input_ids) > max_seq_length:
            raise ValueError(f"example {example.guid}: the tokenizer returned {len(input_ids)} ids, "
                             f"more than max_seq_length={max_seq_length}")
        feature = InputFeatures(
            input_ids=input_ids,
            attention_mask=list(encoded["attention_mask"]),
            token_type_ids=list(encoded["token_type_ids"]),
            label=_label_value(example, label_map, output_mode))
        features.append(feature)
        if index < NUM_EXAMPLES_TO_LOG:
            _log_example(logger, example, feature, tokenizer)
    return features


def _label_value(example, label_map, output_mode):
    if example.label is None:
        return math.nan if output_mode == "regression" else NO_LABEL_ID
    if output_mode == "regression":
        return float(example.label)
    if example.label not in label_map:
        raise ValueError(f"example {example.guid}: label {example.label!r} is not in the label list "
                         f"{list(label_map)}")
    return label_map[example.label]


def _log_example(logger, example, feature, tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(feature.input_ids)
    logger.info("*** Example %s ***", example.guid)
    logger.info("text_a: %s", example.text_a)
    if example.text_b is not None:
        logger.info("text_b: %s", example.text_b)
    logger.info("tokens: %s", " ".join(tokens))
    logger.info("input_ids: %s", " ".join(map(str, feature.input_ids)))
    logger.info("attention_mask: %s", " ".join(map(str, feature.attention_mask)))
    logger.info("token_type_ids: %s", " ".join(map(str, feature.token_type_ids)))
    logger.info("label: %s (id = %s)", example.label, feature.label)


# --------------------------------------------------------------------------------------------------
# Does the vocabulary cover the text?
# --------------------------------------------------------------------------------------------------
UNK_WARNING_RATE = 0.05  # above this share of [UNK] tokens, the model is reading mostly blanks
UNK_SAMPLE_EXAMPLES = 20000  # enough for a rate to a tenth of a percent; a huge training set is not re-read


@dataclass
class UnkReport:
    """How much of a text the vocabulary cannot spell: tokens that became [UNK], and why."""
    unk_tokens: int
    tokens: int
    examples: int
    uncovered_chars: list  # [(character, count)], most frequent first: characters with no vocabulary entry

    @property
    def rate(self):
        return self.unk_tokens / max(1, self.tokens)


def unk_report(examples, tokenizer, logger=None, max_examples=UNK_SAMPLE_EXAMPLES):
    """Count the [UNK] tokens of the examples' texts (special tokens not counted) and log the rate.

    WordPiece turns a whole word into [UNK] when one stretch of it matches no piece, so the characters to
    blame are those with no vocabulary entry of their own, neither "c" nor "##c". Chinese text on an English
    vocabulary is the common case: MiniLM's vocabulary turns "股票中的突破形态" (8 words of one character)
    into [UNK] [UNK] 中 的 [UNK] [UNK] [UNK] [UNK]: it has a few hundred common CJK characters, not 票 or 突.
    Above UNK_WARNING_RATE the log line is a WARNING naming the rate and the most frequent such characters.
    Returns an UnkReport.
    """
    logger = logger or module_logger
    unk_tokens = tokens = 0
    uncovered = Counter()
    sample = examples[:max_examples]
    texts = [text for example in sample for text in (example.text_a, example.text_b) if text is not None]
    count = _count_wordpiece_unks if hasattr(tokenizer, "wordpiece_tokenizer") else _count_id_unks
    for text in texts:
        text_unks, text_tokens = count(tokenizer, text, uncovered)
        unk_tokens, tokens = unk_tokens + text_unks, tokens + text_tokens
    report = UnkReport(unk_tokens, tokens, len(sample), uncovered.most_common(10))
    what = f"{len(sample)} training examples" + (f" (the first of {len(examples)})" if len(examples) > len(sample) else "")
    if report.rate > UNK_WARNING_RATE:
        shown = " ".join(f"{ch!r}x{count}" for ch, count in report.uncovered_chars)
        logger.warning("%.1f%% of the tokens of %s are [UNK] (%d of %d): the model's vocabulary does not cover "
                       "this text (e.g. Chinese text on an English model); most frequent characters it has no "
                       "entry for: %s", 100 * report.rate, what, report.unk_tokens, report.tokens, shown)
    else:
        logger.info("[UNK] rate of %s: %.2f%% (%d of %d tokens)", what, 100 * report.rate, report.unk_tokens,
                    report.tokens)
    return report


def _count_wordpiece_unks(tokenizer, text, uncovered):
    """([UNK] pieces, pieces) of one text for WordPiece, whose [UNK] replaces a whole word: the word's characters
    that the vocabulary lacks (alone or as ##c) go into `uncovered`."""
    vocab, unk = tokenizer.vocab, tokenizer.unk_token
    unks = tokens = 0
    for word in tokenizer.basic_tokenizer.tokenize(text):
        pieces = tokenizer.wordpiece_tokenizer.split_word(word)
        tokens += len(pieces)
        if pieces == (unk,):
            unks += 1
            uncovered.update(ch for ch in word if ch not in vocab and "##" + ch not in vocab)
    return unks, tokens


def _count_id_unks(tokenizer, text, uncovered):
    """([UNK] ids, ids) of one text for the other tokenizers (SentencePiece, byte-level BPE), counted on the
    ids `encode_plus` gives, less its special tokens; a character is uncovered when it alone encodes to [UNK]."""
    unk_id = tokenizer.unk_token_id
    specials = len(tokenizer.encode_plus("")["input_ids"])
    ids = tokenizer.encode_plus(text)["input_ids"]
    unks = ids.count(unk_id)
    if unks:
        uncovered.update(ch for ch in text if not ch.isspace() and unk_id in tokenizer.encode_plus(ch)["input_ids"])
    return unks, len(ids) - specials


# --------------------------------------------------------------------------------------------------
# The on-disk cache
# --------------------------------------------------------------------------------------------------
def tokenizer_fingerprint(tokenizer):
    """What decides the tokenizer's output: its kind, its vocabulary (token -> id), its text-cleaning switches,
    and, for the tokenizers that have them, the rules that split words (SentencePiece's scores, BPE's merges),
    which change the output without changing the vocabulary (`rules_sha1`)."""
    vocab = sorted(tokenizer.vocab.items(), key=lambda item: item[1])
    basic = getattr(tokenizer, "basic_tokenizer", None)

    def setting(name):
        return getattr(tokenizer, name, getattr(basic, name, None))

    return {
        "tokenizer_class": type(tokenizer).__name__,
        "vocab_sha1": hashlib.sha1(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest(),
        "rules_sha1": getattr(tokenizer, "rules_sha1", None),
        "keep_accents": setting("keep_accents"),
        "do_lower_case": setting("do_lower_case"),
        "tokenize_chinese_chars": setting("tokenize_chinese_chars"),
        "strip_accents": setting("strip_accents"),
    }


def file_fingerprint(path):
    """The file's name and a hash of its bytes. Size and modification time are not enough: an edited label
    keeps the size, and a copy (cp -p, rsync, git checkout) can set any mtime."""
    return [os.path.basename(path), sha256_of_file(path)]


def cache_file_name(spec, split, max_seq_length, tokenizer, data_dir, label_list):
    """cached_<task>_<split>_<max_seq_length>_<key>.pt, where key is a short hash of everything else
    the features depend on: the tokenizer (vocabulary, lower-casing), the task's row (columns, labels),
    and the bytes of the data files."""
    files = [file_fingerprint(find_data_file(spec, data_dir, split))]
    if spec.labels == LABELS_FROM_TRAIN_FILE and split != "train":
        files.append(file_fingerprint(find_data_file(spec, data_dir, "train")))
    key_source = {
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "task": repr(spec),
        "labels": label_list,
        "files": files,
        "format": CACHE_FORMAT,
    }
    key = hashlib.sha1(json.dumps(key_source, sort_keys=True).encode("utf-8")).hexdigest()[:10]
    return f"cached_{spec.name}_{split}_{max_seq_length}_{key}.pt"


def _features_to_payload(features, label_list, output_mode):
    # Plain lists and numbers only, so that torch.load(weights_only=True) can read the file back:
    # that loader refuses arbitrary pickled objects (a cache file cannot run code when loaded).
    return {
        "format": CACHE_FORMAT,
        "labels": list(label_list),
        "output_mode": output_mode,
        "input_ids": [f.input_ids for f in features],
        "attention_mask": [f.attention_mask for f in features],
        "token_type_ids": [f.token_type_ids for f in features],
        "label": [f.label for f in features],
    }


def _payload_to_features(payload):
    columns = zip(payload["input_ids"], payload["attention_mask"], payload["token_type_ids"], payload["label"])
    return [InputFeatures(*values) for values in columns]


def _load_cache(path, logger):
    """The cached payload, or None when the file is missing or unreadable (then it is rebuilt)."""
    if not os.path.exists(path):
        return None
    try:
        payload = torch.load(path, weights_only=True)
    except Exception as err:  # a truncated or foreign file: say so and rebuild
        logger.warning("Cache file %s cannot be read (%s); rebuilding it", path, err)
        return None
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        logger.warning("Cache file %s has an old or unknown format; rebuilding it", path)
        return None
    return payload


def default_features_cache_dir(data_dir):
    """data_dir when this user may write there; otherwise a `features` folder in the per-user cache
    (BERT_READ_CACHE or ~/.cache/bert_read_step_to_step), so a read-only data folder can be used.
    Files from different data folders cannot mix there: the key holds the hash of the data's bytes."""
    if os.access(data_dir, os.W_OK):
        return os.fspath(data_dir)
    return os.path.join(resolve_cache_dir(None), "features")


def load_and_cache_features(task, data_dir, split, tokenizer, max_seq_length, overwrite_cache=False,
                            cache_dir=None, logger=None, **generic_options):
    """The features of one split, from the cache file if there is one, else built and then cached.

    The cache file lives in cache_dir (default: `default_features_cache_dir(data_dir)`). overwrite_cache=True
    rebuilds it. Returns list[InputFeatures]; wrap it in FeatureDataset for a DataLoader.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length must be at least 3 ([CLS], one token, [SEP]), got {max_seq_length}")
    logger = logger or module_logger
    spec = get_task(task, **generic_options)
    label_list = get_labels(spec, data_dir)
    cache_dir = cache_dir or default_features_cache_dir(data_dir)
    cache_path = os.path.join(cache_dir, cache_file_name(spec, split, max_seq_length, tokenizer,
                                                         data_dir, label_list))

    if not overwrite_cache:
        features = _cached_features(cache_path, logger)
        if features is not None:
            return features
    os.makedirs(cache_dir, exist_ok=True)
    # Several runs may start together on one data folder (reinit_sweep --workers, two users): the first to
    # take the lock builds the file, the others wait for it and then read it, so it is built once.
    with exclusive_lock(os.path.join(cache_dir, FEATURES_LOCK_NAME)):
        features = None if overwrite_cache else _cached_features(cache_path, logger)
        if features is not None:
            return features  # built by another run while this one waited
        data_file = os.path.join(data_dir, spec.files[split])
        logger.info("Creating features from %s (task %s, max_seq_length %d)", data_file, spec.name, max_seq_length)
        examples = read_examples(spec, data_dir, split)
        features = convert_examples_to_features(examples, tokenizer, max_seq_length, label_list,
                                                spec.output_mode, logger=logger)
        # Written under a temporary name and renamed: a run killed while writing leaves no half-written cache
        # that the next run would trust.
        payload = _features_to_payload(features, label_list, spec.output_mode)
        write_atomically(cache_path, lambda temp: torch.save(payload, temp))
        logger.info("Saved %d features into cache file %s", len(features), cache_path)
    return features


def _cached_features(cache_path, logger):
    """The features in the cache file, or None when there is no readable one."""
    payload = _load_cache(cache_path, logger)
    if payload is None:
        return None
    logger.info("Loading features from cache file %s", cache_path)
    return _payload_to_features(payload)


# --------------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Padding:
    """How a batch is padded to its longest row. BERT, ALBERT, RoBERTa: on the right, with the tokenizer's pad
    id and token type 0. XLNet: on the LEFT (its tokenizer's `padding_side`), so that `<cls>`, which XLNet reads
    the sentence from, stays at the last position of every row; padding there gets token type 4."""
    side: str = "right"
    token_id: int = 0
    token_type_id: int = 0


def padding_of(tokenizer):
    """The Padding a tokenizer's models expect (its padding_side, pad_token_id and pad_token_type_id)."""
    return Padding(side=getattr(tokenizer, "padding_side", "right"), token_id=tokenizer.pad_token_id,
                   token_type_id=getattr(tokenizer, "pad_token_type_id", 0))


class FeatureDataset(Dataset):
    """A list of InputFeatures, indexable by a DataLoader, and how to pad them: batch it with
    `collate_features(batch, padding=dataset.padding)`."""

    def __init__(self, features, padding=Padding()):
        self.features = list(features)
        self.padding = padding

    def __len__(self):
        return len(self.features)

    def __getitem__(self, index):
        return self.features[index]


# Examples per bucket, in batches. Smaller buckets hold a narrower range of lengths (less padding) but leave
# fewer ways to mix examples into batches. On the demo's 500-example training subsets (batch 16, max_seq_length
# 64) the tokens fed per real token are 1.66 in plain random batches, 1.09 with buckets of 4 batches, 1.18
# with 8, and 1.03 with whole-set sorting, which would give the same batches every epoch.
BUCKET_BATCHES = 4


def length_bucketed_batches(order, lengths, batch_size, generator, bucket_batches=BUCKET_BATCHES):
    """Cut `order` (example indexes in a shuffled order) into batches of examples of about the same length.

    A batch is padded to its longest example, so a random batch of tweets of 10 to 64 tokens computes mostly
    padding. Bucketing cuts that, keeping every example exactly once per epoch and the batches random:
      1. sort `order` by length (stable: examples of equal length stay in their shuffled order);
      2. cut the sorted list into buckets of `bucket_batches * batch_size` examples, the shortest first;
      3. shuffle each bucket with `generator` and cut it into batches;
      4. shuffle the batches, so an epoch does not go from short to long; the one partial batch (the last
         bucket's remainder) stays last, where plain batching has it too, so that a run that drops an
         epoch's incomplete accumulation group drops the same number of examples either way.
    Worked example: lengths 9 3 7 5 2 8 (indexes 0-5), batch_size 2, bucket_batches 1 -> sorted 4 1 3 2 5 0
    -> buckets [4 1] [3 2] [5 0] -> batches in some order, e.g. [3 2] [0 5] [1 4]: each pairs neighbours
    in length. Returns a list of lists of indexes; the same (order, generator state) gives the same batches.
    """
    by_length = sorted(order, key=lambda index: lengths[index])
    bucket_size = bucket_batches * batch_size
    batches = []
    for start in range(0, len(by_length), bucket_size):
        bucket = by_length[start:start + bucket_size]
        bucket = [bucket[i] for i in torch.randperm(len(bucket), generator=generator).tolist()]
        batches += [bucket[i:i + batch_size] for i in range(0, len(bucket), batch_size)]
    partial = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + partial


def collate_features(batch, pad_to=None, padding=Padding()):
    """Pad a list of InputFeatures into a dict of tensors, each [B, L].

    L is the longest example in this batch (dynamic padding), or `pad_to` when given (fixed padding,
    as in the original BERT code, for comparing the two). Padding positions get mask 0 and the pad id and
    token type of `padding`, on its side.
    labels: [B], long for classification, float for regression.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    longest = max(len(f.input_ids) for f in batch)
    length = longest if pad_to is None else pad_to
    if length < longest:
        raise ValueError(f"pad_to={pad_to} is shorter than the longest example in the batch ({longest})")
    fill = {"input_ids": padding.token_id, "attention_mask": 0, "token_type_ids": padding.token_type_id}

    def padded(name):
        rows = []
        for feature in batch:
            row = getattr(feature, name)
            pad = [fill[name]] * (length - len(row))
            rows.append(pad + row if padding.side == "left" else row + pad)
        return torch.tensor(rows, dtype=torch.long)  # [B, L]

    is_regression = isinstance(batch[0].label, float)
    labels = torch.tensor([f.label for f in batch], dtype=torch.float if is_regression else torch.long)  # [B]
    return {
        "input_ids": padded("input_ids"),
        "attention_mask": padded("attention_mask"),
        "token_type_ids": padded("token_type_ids"),
        "labels": labels,
    }


def main(argv=None):
    """Show the data: the first examples of a task as tokens, ids and masks, and one padded batch."""
    import argparse
    import sys

    from transformers.file_utils import demo_model_dir
    from transformers.tokenization_bert import BertTokenizer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("task")
    parser.add_argument("data_dir")
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default=None,
                        help="folder or vocab.txt of the tokenizer (default: the installed MiniLM checkpoint)")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("-n", type=int, default=NUM_EXAMPLES_TO_LOG, help="how many examples to show")
    args = parser.parse_args(argv)
    if args.model is None:
        args.model = demo_model_dir()

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    tokenizer = BertTokenizer.from_pretrained(args.model)
    task = get_task(args.task)
    examples = read_examples(task, args.data_dir, args.split)[:args.n]
    features = convert_examples_to_features(examples, tokenizer, args.max_seq_length,
                                            get_labels(task, args.data_dir), task.output_mode)
    batch = collate_features(features)
    print(f"these {len(features)} examples as one batch, padded to the longest (shape, then row 0):")
    for name, tensor in batch.items():
        first_row = tensor[0].tolist() if tensor.dim() == 2 else tensor.tolist()
        print(f"  {name:15} {list(tensor.shape)}  {first_row}")


if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.features")
