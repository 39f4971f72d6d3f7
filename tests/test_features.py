"""Examples -> features -> cache file -> padded batches."""
import logging
import os

import pytest
import torch

from _support import minilm_dir, read_reviews, read_tweets
from bert_read_step_to_step.features import (
    NO_LABEL_ID, FeatureDataset, InputFeatures, collate_features, convert_examples_to_features,
    load_and_cache_features, unk_report,
)
from bert_read_step_to_step.tasks import InputExample


class WordTokenizer:
    """A stand-in with the contract's encode_plus: one token per whitespace-separated word, ids from a
    fixed vocabulary, longest-first truncation. It counts its calls, so a test can tell a cache hit."""

    def __init__(self, words=("the", "car", "drives", "itself", "good", "bad", "is", "it")):
        self.ids_to_tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words]
        self.vocab = {token: i for i, token in enumerate(self.ids_to_tokens)}
        self.do_lower_case = True
        self.calls = 0

    def _ids(self, text):
        return [self.vocab.get(word, 1) for word in text.lower().split()]

    def encode_plus(self, text, text_pair=None, max_length=None):
        self.calls += 1
        a, b = self._ids(text), None if text_pair is None else self._ids(text_pair)
        if max_length is not None:
            room = max_length - (2 if b is None else 3)
            while len(a) + len(b or []) > room:
                if b is None or len(a) > len(b):
                    a = a[:-1]
                else:
                    b = b[:-1]
        ids = [2] + a + [3]
        types = [0] * len(ids)
        if b is not None:
            ids += b + [3]
            types += [1] * (len(b) + 1)
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)}

    def convert_ids_to_tokens(self, ids):
        return [self.ids_to_tokens[i] for i in ids]


def example(text_a, text_b=None, label="1", guid="train-1"):
    return InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label)


def write_tweets_task(folder, train_rows, dev_rows=()):
    """A generic-task folder: train.tsv (and dev.tsv) with header label<TAB>text."""
    for name, rows in (("train.tsv", train_rows), ("dev.tsv", dev_rows)):
        if rows:
            lines = ["label\ttext"] + [f"{label}\t{text}" for label, text in rows]
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


TRAIN_ROWS = [("pos", "the car drives itself"), ("neg", "it is bad"), ("pos", "good")]


# --------------------------------------------------------------------------------------------------
# convert_examples_to_features
# --------------------------------------------------------------------------------------------------
def test_single_text_and_pair_features():
    tokenizer = WordTokenizer()
    features = convert_examples_to_features(
        [example("the car", label="neg"), example("good", "it is", label="pos")],
        tokenizer, max_seq_length=16, label_list=["neg", "pos"], output_mode="classification")
    v = tokenizer.vocab
    assert features[0] == InputFeatures(input_ids=[2, v["the"], v["car"], 3], attention_mask=[1] * 4,
                                        token_type_ids=[0] * 4, label=0)
    # [CLS] good [SEP] it is [SEP] -> segment ids 0 0 0 1 1 1
    assert features[1].input_ids == [2, v["good"], 3, v["it"], v["is"], 3]
    assert features[1].token_type_ids == [0, 0, 0, 1, 1, 1]
    assert features[1].label == 1


def test_truncation_respects_max_seq_length():
    tokenizer = WordTokenizer()
    long_text = " ".join(["car"] * 50)
    features = convert_examples_to_features(
        [example(long_text), example(long_text, "good bad"), example("good")],
        tokenizer, max_seq_length=8, label_list=["0", "1"], output_mode="classification")
    assert [len(f.input_ids) for f in features] == [8, 8, 3]
    # Longest first: the 50-word text gives up words, the 2-word text keeps both.
    assert features[1].token_type_ids.count(1) == 3


def test_regression_and_unlabelled_examples():
    features = convert_examples_to_features(
        [example("good", label="3.8"), example("bad", label=None)], WordTokenizer(), 8, [], "regression")
    assert features[0].label == pytest.approx(3.8) and isinstance(features[0].label, float)
    assert features[1].label != features[1].label  # NaN: no score in the file
    unlabelled = convert_examples_to_features([example("bad", label=None)], WordTokenizer(), 8,
                                              ["0", "1"], "classification")
    assert unlabelled[0].label == NO_LABEL_ID


def test_label_outside_the_list_names_the_example():
    with pytest.raises(ValueError, match=r"example dev-7: label 'maybe' is not in the label list"):
        convert_examples_to_features([example("good", label="maybe", guid="dev-7")], WordTokenizer(), 8,
                                     ["no", "yes"], "classification")


@pytest.mark.parametrize("max_seq_length", [0, 2])
def test_max_seq_length_below_three_is_rejected(max_seq_length):
    with pytest.raises(ValueError, match="at least 3"):
        convert_examples_to_features([example("good")], WordTokenizer(), max_seq_length, ["1"], "classification")


def test_a_tokenizer_that_ignores_max_length_is_caught():
    class Overlong(WordTokenizer):
        def encode_plus(self, text, text_pair=None, max_length=None):
            return super().encode_plus(text, text_pair, max_length=None)

    with pytest.raises(ValueError, match="more than max_seq_length=4"):
        convert_examples_to_features([example("the car drives itself")], Overlong(), 4, ["1"], "classification")


def test_first_examples_are_logged(caplog):
    logger = logging.getLogger("test_features.show")
    with caplog.at_level(logging.INFO, logger="test_features.show"):
        convert_examples_to_features([example("the car", guid=f"train-{i}") for i in range(5)],
                                     WordTokenizer(), 8, ["0", "1"], "classification", logger=logger)
    text = caplog.text
    assert "tokens: [CLS] the car [SEP]" in text and "attention_mask: 1 1 1 1" in text
    assert "train-2" in text and "train-3" not in text  # only the first few


# --------------------------------------------------------------------------------------------------
# collate_features
# --------------------------------------------------------------------------------------------------
def test_collate_pads_to_the_longest_in_the_batch():
    batch = [InputFeatures([2, 7, 3], [1, 1, 1], [0, 0, 0], 1),
             InputFeatures([2, 7, 8, 3, 9, 3], [1] * 6, [0, 0, 0, 0, 1, 1], 0)]
    out = collate_features(batch)
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert out["input_ids"].tolist() == [[2, 7, 3, 0, 0, 0], [2, 7, 8, 3, 9, 3]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]
    assert out["token_type_ids"].tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]]
    assert out["labels"].tolist() == [1, 0] and out["labels"].dtype == torch.long
    assert out["input_ids"].dtype == torch.long


def test_collate_fixed_padding_and_regression_labels():
    batch = [InputFeatures([2, 3], [1, 1], [0, 0], 2.5), InputFeatures([2, 5, 3], [1, 1, 1], [0, 0, 0], 0.0)]
    out = collate_features(batch, pad_to=5)
    assert out["input_ids"].shape == (2, 5) and out["attention_mask"][0].tolist() == [1, 1, 0, 0, 0]
    assert out["labels"].dtype == torch.float32 and out["labels"].tolist() == [2.5, 0.0]
    with pytest.raises(ValueError, match="shorter than the longest"):
        collate_features(batch, pad_to=2)


def test_dataloader_with_feature_dataset():
    features = convert_examples_to_features([example("good"), example("the car drives itself")] * 3,
                                            WordTokenizer(), 16, ["0", "1"], "classification")
    loader = torch.utils.data.DataLoader(FeatureDataset(features), batch_size=4, collate_fn=collate_features)
    shapes = [tuple(batch["input_ids"].shape) for batch in loader]
    assert shapes == [(4, 6), (2, 6)]


# --------------------------------------------------------------------------------------------------
# load_and_cache_features
# --------------------------------------------------------------------------------------------------
def cache_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("cached_"))


def test_cache_hit_skips_the_tokenizer(tmp_path):
    write_tweets_task(tmp_path, TRAIN_ROWS)
    tokenizer = WordTokenizer()
    first = load_and_cache_features("generic", tmp_path, "train", tokenizer, max_seq_length=8)
    assert tokenizer.calls == 3
    [name] = cache_files(tmp_path)
    assert name.startswith("cached_generic_train_8_") and name.endswith(".pt")

    second = load_and_cache_features("generic", tmp_path, "train", tokenizer, max_seq_length=8)
    assert tokenizer.calls == 3  # nothing tokenized: read from the cache
    assert second == first
    # Labels sorted from the training file: neg -> 0, pos -> 1.
    assert [f.label for f in second] == [1, 0, 1]
    # The cache holds plain lists and numbers: the safe loader reads it.
    payload = torch.load(tmp_path / name, weights_only=True)
    assert payload["input_ids"][2] == [2, tokenizer.vocab["good"], 3]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_overwrite_cache_rebuilds(tmp_path):
    write_tweets_task(tmp_path, TRAIN_ROWS)
    tokenizer = WordTokenizer()
    load_and_cache_features("generic", tmp_path, "train", tokenizer, 8)
    load_and_cache_features("generic", tmp_path, "train", tokenizer, 8, overwrite_cache=True)
    assert tokenizer.calls == 6
    assert len(cache_files(tmp_path)) == 1


def test_cache_key_changes_with_max_seq_length_and_vocab(tmp_path):
    write_tweets_task(tmp_path, TRAIN_ROWS)
    tokenizer = WordTokenizer()
    short = load_and_cache_features("generic", tmp_path, "train", tokenizer, 4)
    long = load_and_cache_features("generic", tmp_path, "train", tokenizer, 8)
    assert tokenizer.calls == 6 and len(cache_files(tmp_path)) == 2
    assert len(short[0].input_ids) == 4 and len(long[0].input_ids) == 6
    other_vocab = WordTokenizer(words=("car", "the", "drives", "itself", "good", "bad", "is", "it"))
    load_and_cache_features("generic", tmp_path, "train", other_vocab, 8)
    assert other_vocab.calls == 3 and len(cache_files(tmp_path)) == 3
    lowercase_off = WordTokenizer()
    lowercase_off.do_lower_case = False
    load_and_cache_features("generic", tmp_path, "train", lowercase_off, 8)
    assert lowercase_off.calls == 3 and len(cache_files(tmp_path)) == 4


def test_regenerated_data_file_is_not_served_from_a_stale_cache(tmp_path):
    write_tweets_task(tmp_path, TRAIN_ROWS)
    tokenizer = WordTokenizer()
    load_and_cache_features("generic", tmp_path, "train", tokenizer, 8)
    write_tweets_task(tmp_path, TRAIN_ROWS + [("neg", "bad bad car")])
    features = load_and_cache_features("generic", tmp_path, "train", tokenizer, 8)
    assert len(features) == 4 and tokenizer.calls == 3 + 4


def test_an_edit_that_keeps_size_and_mtime_is_not_served_from_a_stale_cache(tmp_path):
    # Dev labels edited in place: same length, and the modification time put back (as cp -p or rsync do).
    write_tweets_task(tmp_path, TRAIN_ROWS, dev_rows=[("pos", "good car"), ("neg", "bad car")])
    tokenizer = WordTokenizer()
    dev = tmp_path / "dev.tsv"
    before = load_and_cache_features("generic", tmp_path, "dev", tokenizer, 8)
    stat = dev.stat()
    dev.write_text(dev.read_text().replace("pos\tgood", "neg\tgood"), encoding="utf-8")
    os.utime(dev, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (dev.stat().st_size, dev.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    after = load_and_cache_features("generic", tmp_path, "dev", tokenizer, 8)
    assert [f.label for f in before] == [1, 0] and [f.label for f in after] == [0, 0]
    assert len(cache_files(tmp_path)) == 2


def test_a_read_only_data_folder_caches_in_the_user_cache(tmp_path, monkeypatch):
    data, user_cache = tmp_path / "data", tmp_path / "user-cache"
    data.mkdir()
    write_tweets_task(data, TRAIN_ROWS)
    data.chmod(0o555)
    # Root may write anywhere, so the check that decides is made to see what a normal user sees.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(data) else real_access(path, mode))
    monkeypatch.setenv("BERT_READ_CACHE", str(user_cache))
    try:
        features = load_and_cache_features("generic", data, "train", WordTokenizer(), 8)
    finally:
        data.chmod(0o755)
    assert len(features) == 3 and cache_files(data) == []
    assert len(cache_files(user_cache / "features")) == 1


def test_cache_dir_and_a_corrupt_cache_file(tmp_path, caplog):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    write_tweets_task(data, TRAIN_ROWS, dev_rows=[("neg", "bad car")])
    tokenizer = WordTokenizer()
    dev = load_and_cache_features("generic", data, "dev", tokenizer, 8, cache_dir=cache)
    assert [f.label for f in dev] == [0] and cache_files(data) == []
    [name] = cache_files(cache)
    (cache / name).write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        again = load_and_cache_features("generic", data, "dev", tokenizer, 8, cache_dir=cache)
    assert again == dev and tokenizer.calls == 2 and "rebuilding" in caplog.text


def test_cached_regression_labels_stay_floats(tmp_path):
    header = "\t".join(["index", "genre", "filename", "year", "old_index", "source1", "source2",
                        "sentence1", "sentence2", "score"])
    row = "\t".join(["0"] * 7 + ["the car", "it drives itself", "3.5"])
    (tmp_path / "dev.tsv").write_text(header + "\n" + row + "\n", encoding="utf-8")
    tokenizer = WordTokenizer()
    load_and_cache_features("sts-b", tmp_path, "dev", tokenizer, 16)
    cached = load_and_cache_features("sts-b", tmp_path, "dev", tokenizer, 16)
    assert tokenizer.calls == 1
    assert collate_features(cached)["labels"].tolist() == [3.5]


# --------------------------------------------------------------------------------------------------
# With the real tokenizer and the real demo text
# --------------------------------------------------------------------------------------------------
def test_real_tokenizer_on_tweets_and_reviews():
    from transformers.tokenization_bert import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()))
    tweets = [InputExample(f"train-{i}", text, None, label) for i, (label, text) in enumerate(read_tweets(200))]
    features = convert_examples_to_features(tweets, tokenizer, 24, ["negative", "neutral", "positive"],
                                            "classification")
    lengths = [len(f.input_ids) for f in features]
    assert max(lengths) == 24 and min(lengths) < 24
    for f in features:
        assert f.input_ids[0] == tokenizer.cls_token_id and f.input_ids[-1] == tokenizer.sep_token_id
    # A long Chinese review as text_a and a short one as text_b: truncation takes from the long one only.
    long_review, short_text = read_reviews(50)[0][1] * 5, "很好"
    pair = convert_examples_to_features([InputExample("dev-1", long_review, short_text, "pos")], tokenizer, 32,
                                        ["neg", "pos"], "classification")[0]
    assert len(pair.input_ids) == 32
    assert pair.token_type_ids.count(1) == len(tokenizer.tokenize(short_text)) + 1
    batch = collate_features(features[:8])
    assert batch["input_ids"].shape == (8, max(lengths[:8]))


def test_real_tokenizer_cache_round_trip(tmp_path):
    from transformers.tokenization_bert import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()))
    tweets = read_tweets()  # sorted by label: take both ends, since a training file needs two labels
    write_tweets_task(tmp_path, [(label, text.replace("\t", " ").replace("\n", " "))
                                 for label, text in tweets[:20] + tweets[-20:]])
    built = load_and_cache_features("generic", tmp_path, "train", tokenizer, 32)
    loaded = load_and_cache_features("generic", tmp_path, "train", tokenizer, 32)
    assert loaded == built and len(loaded) == 40
    cased = BertTokenizer.from_pretrained(str(minilm_dir()), do_lower_case=False)
    load_and_cache_features("generic", tmp_path, "train", cased, 32)
    assert len(cache_files(tmp_path)) == 2  # lower-casing is part of the key


# --------------------------------------------------------------------------------------------------
# unk_report: does the vocabulary cover the text?
# --------------------------------------------------------------------------------------------------
def test_unk_report_warns_on_chinese_text_for_an_english_vocabulary(caplog):
    from transformers.tokenization_bert import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()))
    reviews = [InputExample(f"train-{i}", text, None, label) for i, (label, text) in enumerate(read_reviews(40))]
    with caplog.at_level(logging.INFO, logger="unk-test"):
        report = unk_report(reviews, tokenizer, logger=logging.getLogger("unk-test"))
    # The counts are those of the tokenizer's own output, token by token.
    tokens = [token for example in reviews for token in tokenizer.tokenize(example.text_a)]
    assert (report.unk_tokens, report.tokens) == (tokens.count("[UNK]"), len(tokens))
    assert report.rate > 0.05
    # Every character blamed is one the vocabulary cannot spell alone, most frequent first.
    assert report.uncovered_chars and all(tokenizer.tokenize(ch) == ["[UNK]"] for ch, _ in report.uncovered_chars)
    counts = [count for _, count in report.uncovered_chars]
    assert counts == sorted(counts, reverse=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{100 * report.rate:.1f}% of the tokens of 80 training examples are [UNK]" in warnings[0]
    assert "vocabulary does not cover this text" in warnings[0]
    top_char, top_count = report.uncovered_chars[0]
    assert f"{top_char!r}x{top_count}" in warnings[0]


def test_unk_report_is_quiet_on_english_tweets(caplog):
    from transformers.tokenization_bert import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()))
    tweets = [InputExample(f"train-{i}", text, None, label) for i, (label, text) in enumerate(read_tweets(200))]
    with caplog.at_level(logging.INFO, logger="unk-test"):
        report = unk_report(tweets, tokenizer, logger=logging.getLogger("unk-test"))
    assert report.rate < 0.05 and report.examples == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(r.getMessage().startswith("[UNK] rate of 200 training examples: ") for r in caplog.records)
