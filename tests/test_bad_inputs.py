"""Bad input, tried: odd texts flow through tokenizer -> features -> model with a defined result, and bad
data, flags and checkpoints given to run_classifier stop it with an error that names the file, line,
flag or key, before anything is written. RELIABILITY.md lists every case with the test that shows it."""
import json
import re
import shutil

import pytest
import torch
from safetensors.torch import save_file

import run_classifier
from _classifier_runs import STSB_HEADER, T, balanced_tweets, common_args, write_generic_task, write_lines
from _classifier_runs import one_torch_thread  # noqa: F401 (an autouse fixture: torch on one thread here)
from _support import minilm_dir
from bert_read_step_to_step.features import collate_features, convert_examples_to_features
from bert_read_step_to_step.tasks import DataError, InputExample, read_examples
from transformers import BertForSequenceClassification, BertTokenizer, LoadingError
from transformers.file_utils import UserError

MAX_LEN = 32


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(str(minilm_dir()))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).eval()


def tokens(tokenizer, text, text_pair=None, max_length=MAX_LEN):
    ids = tokenizer.encode_plus(text, text_pair, max_length=max_length)["input_ids"]
    return tokenizer.convert_ids_to_tokens(ids)


# ---- odd texts: a defined result for each -----------------------------------------------------------------
# (case, text, what it must give: the tokens of a plain text, or an explicit token list)
ODD_TEXTS = [
    ("empty", "", ["[CLS]", "[SEP]"]),
    ("whitespace only", " \t\u3000\xa0 ", ["[CLS]", "[SEP]"]),
    # Control characters (Cc, and NUL, DEL) are removed; tab, CR and line separators separate words.
    ("control characters", "good\x00 car\x07\x1b\x7f", "good car"),
    ("control characters inside words", "a\x0bb\x0cc\x1cd\x85e\u2028f\rg", "abc ##de f g"),
    # Zero-width characters (Cf) are removed, which joins the letters around them.
    ("zero-width characters", "self\u200bdriving\u200d car\ufeff", "selfdriving car"),
    ("zero-width only", "\u200b\u200c\u200d\u2060\ufeff", ["[CLS]", "[SEP]"]),
    # A letter plus a combining accent equals the precomposed letter; uncased models strip the accent.
    ("combining accent", "cafe\u0301", "café"),
    ("stacked combining marks", "h\u0336\u0334e\u0337l\u0338lo", "hello"),
    ("combining marks alone", "\u0301\u0301 \u0308", ["[CLS]", "[SEP]"]),
    # Undecodable bytes (U+FFFD) and a lone surrogate carry no text: removed.
    ("replacement character and lone surrogate", "x\ufffdy\ud800", "xy"),
    ("emoji", "\U0001F697\U0001F4A8 car", ["[CLS]", "[UNK]", "car", "[SEP]"]),
    ("one very long word", "x" * 10_000, ["[CLS]", "[UNK]", "[SEP]"]),
    ("very long text", "the car " * 50_000, ["[CLS]"] + ["the", "car"] * 15 + ["[SEP]"]),
    # A special token typed in the text is that token (documented in tokenization_bert.py).
    ("special token in the text", "a [SEP] b", ["[CLS]", "a", "[SEP]", "b", "[SEP]"]),
]


@pytest.mark.parametrize("case, text, expected", ODD_TEXTS, ids=[case for case, _, _ in ODD_TEXTS])
def test_odd_text_tokenizes_to_a_defined_result(tokenizer, case, text, expected):
    if isinstance(expected, str):
        # "abc ##de" style: the tokens given literally; otherwise the tokens of the plain text.
        plain = expected.split() if "##" in expected else tokenizer.tokenize(expected)
        expected = ["[CLS]"] + plain + ["[SEP]"]
    assert tokens(tokenizer, text) == expected


def test_odd_pairs_truncate_and_type_as_documented(tokenizer):
    # Empty texts on both sides: only the special tokens; the second [SEP] belongs to segment b.
    empty = tokenizer.encode_plus("", "", max_length=MAX_LEN)
    assert tokenizer.convert_ids_to_tokens(empty["input_ids"]) == ["[CLS]", "[SEP]", "[SEP]"]
    assert empty["token_type_ids"] == [0, 0, 1]
    # A short question and a huge passage: the passage alone is cut (longest first).
    pair = tokens(tokenizer, "is it safe ?", "the car " * 50_000)
    assert len(pair) == MAX_LEN and pair[:6] == ["[CLS]", "is", "it", "safe", "?", "[SEP]"]
    # max_seq_length 3 with a pair: both texts give up everything.
    assert tokens(tokenizer, "a b", "c d", max_length=3) == ["[CLS]", "[SEP]", "[SEP]"]


def test_odd_texts_flow_through_features_and_the_model(tokenizer, model):
    examples = [InputExample(guid=f"dev-{i}", text_a=text, label=["negative", "neutral", "positive"][i % 3])
                for i, (_, text, _) in enumerate(ODD_TEXTS)]
    examples.append(InputExample(guid="dev-pair", text_a="", text_b="\u200b" * 5, label="neutral"))
    features = convert_examples_to_features(examples, tokenizer, MAX_LEN, ["negative", "neutral", "positive"],
                                            "classification")
    for feature in features:
        assert 2 <= len(feature.input_ids) <= MAX_LEN
        assert feature.input_ids[0] == tokenizer.cls_token_id and feature.input_ids[-1] == tokenizer.sep_token_id
        assert feature.attention_mask == [1] * len(feature.input_ids)
    batch = collate_features(features)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits  # [B, 3]
    assert logits.shape == (len(examples), 3) and torch.isfinite(logits).all()
    # An empty text and a text of zero-width characters are the same input: [CLS] [SEP].
    assert features[0].input_ids == features[5].input_ids == [tokenizer.cls_token_id, tokenizer.sep_token_id]


def test_odd_texts_in_data_files_through_run_classifier(tmp_path):
    """The texts that fit on one TSV line, in dev.tsv and test.tsv, evaluated and predicted by run_classifier.
    (A lone surrogate cannot be written as UTF-8, so no file holds one: invalid bytes in a file are an
    error naming the line, see test_tasks.py::test_invalid_utf8_names_the_line.)"""
    odd = [text for _, text, _ in ODD_TEXTS if "\t" not in text and "\n" not in text and "\ud800" not in text]
    odd = [text if len(text) < 20_000 else text[:20_000] for text in odd]
    labels = ["negative", "neutral", "positive"]
    dev = [(labels[i % 3], text) for i, text in enumerate(odd)]
    data = write_generic_task(tmp_path / "data", balanced_tweets(6), dev, odd)
    # The file keeps every odd character: lines are split on "\n" only.
    assert [example.text_a for example in read_examples("generic", data, "dev")] == odd
    out = tmp_path / "out"
    results = run_classifier.main(common_args(data, out) + ["--do_eval", "--do_predict"])
    assert json.loads((out / "eval_results.json").read_text())["examples"] == len(odd)
    (scores,) = results.values()  # one model evaluated: the checkpoint itself
    assert 0.0 <= scores["acc"] <= 1.0
    rows = [row.split(T) for row in (out / "test_predictions.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    # test.tsv has one column, so its empty text is a blank line, and blank lines are skipped; the guid
    # of every other prediction is its line number (line 1 is the header).
    assert [guid for guid, _ in rows] == [f"test-{number}" for number, text in enumerate(odd, start=2) if text]
    assert all(prediction in labels for _, prediction in rows)


# ---- bad data ------------------------------------------------------------------------------------------

def test_pair_task_given_one_column(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    header = T.join(["index", "sentence1", "sentence2", "label"])
    write_lines(data / "train.tsv", [header, T.join(["0", "a car drives", "it drives", "entailment"])])
    write_lines(data / "dev.tsv", [header, T.join(["0", "a car drives", "it drives", "entailment"]),
                                   T.join(["1", "only one sentence", "not_entailment"])])
    with pytest.raises(DataError, match=re.escape(f"{data / 'dev.tsv'}:3: expected at least 4 fields")):
        run_classifier.main(common_args(data, tmp_path / "out", task="rte") + ["--do_train", "--do_eval"])
    assert not (tmp_path / "out").exists()


def test_generic_pair_column_missing_from_the_file(tmp_path):
    data = write_generic_task(tmp_path / "data", balanced_tweets(4), balanced_tweets(3, start=4))
    with pytest.raises(DataError, match=r"no column named 'text_b' in the header \['label', 'text'\]"):
        run_classifier.main(common_args(data, tmp_path / "out") + ["--do_train", "--text_b_column", "text_b"])


@pytest.mark.parametrize("score", ["nan", "inf", "-inf"])
def test_regression_label_must_be_a_finite_number(tmp_path, score):
    """float() accepts "nan" and "inf"; a NaN target makes the loss NaN and, after one step, every weight."""
    path = write_lines(tmp_path / "train.tsv", [T.join(STSB_HEADER), T.join(["0"] * 7 + ["a", "b", "2.5"]),
                                                T.join(["1"] * 7 + ["a", "b", score])])
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:3: .*{re.escape(repr(score))}"):
        read_examples("sts-b", tmp_path, "train")


# ---- bad flags -----------------------------------------------------------------------------------------

@pytest.fixture
def small_task(tmp_path):
    return write_generic_task(tmp_path / "data", balanced_tweets(4), balanced_tweets(3, start=4))


def test_unknown_task_names_the_closest(small_task, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'mrcp'; did you mean 'mrpc'"):
        run_classifier.main(common_args(small_task, tmp_path / "out", task="mrcp") + ["--do_train"])
    assert not (tmp_path / "out").exists()


def test_a_task_name_that_is_no_typo_points_to_generic_and_says_how_tasks_are_named(small_task, tmp_path):
    """'tweets' is one letter-count away from 'tnews', but it is the user's own data: the generic task."""
    with pytest.raises(ValueError) as error:
        run_classifier.main(common_args(small_task, tmp_path / "out", task="tweets") + ["--do_train"])
    message = str(error.value)
    assert message.startswith("unknown task 'tweets'; did you mean 'generic'? known tasks: cola, sst-2, ")
    assert ("A task is named for the benchmark data set whose files it reads; 'generic' reads your own TSV or CSV "
            "file with a label column and one or two text columns") in message
    assert not (tmp_path / "out").exists()


def test_unknown_model_type(small_task, tmp_path, capsys):
    argv = common_args(small_task, tmp_path / "out") + ["--do_train"]
    argv[argv.index("bert")] = "gpt2"
    with pytest.raises(SystemExit) as exit_info:
        run_classifier.main(argv)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "--model_type 'gpt2' is not supported; choose one of bert, albert, roberta" in message


@pytest.mark.parametrize("flags, message", [
    (["--reinit_keys", "bert.encoder.layer.60"], "reinit selector 'bert.encoder.layer.60' matches no parameter"),
    (["--reinit_keys", "embeddings.position_ids"], "names a buffer or a non-parameter checkpoint entry"),
    (["--reinit_layers", "7"], "cannot re-initialize the top 7 layers: the model has 6 encoder layers (choose 0..6)"),
    (["--reinit_keys", "encoder.layer.9.attention"], "reinit selector 'encoder.layer.9.attention' matches no "
     "parameter of BertForSequenceClassification: bert.encoder.layer is numbered 0-5 in this model (6 of them); "
     "closest names: bert.encoder.layer.5.attention, bert.encoder.layer.4.attention"),
], ids=["matches-nothing", "buffer", "more-layers-than-the-model", "a-layer-past-the-last"])
def test_bad_reinit_flags_stop_the_run_before_anything_is_written(small_task, tmp_path, flags, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_classifier.main(common_args(small_task, tmp_path / "out") + ["--do_train"] + flags)
    assert not (tmp_path / "out").exists()


def test_max_seq_length_below_3(small_task, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_classifier.main(common_args(small_task, tmp_path / "out", max_seq_length=2) + ["--do_train"])
    assert exit_info.value.code == 2 and "--max_seq_length 2 is too small" in capsys.readouterr().err


def test_max_seq_length_above_the_model_positions(small_task, tmp_path):
    with pytest.raises(UserError, match=r"--max_seq_length 513 exceeds the longest input the model.s position table takes \(512, "):
        run_classifier.main(common_args(small_task, tmp_path / "out", max_seq_length=513) + ["--do_train"])
    assert not (tmp_path / "out").exists()


# ---- checkpoints of another architecture --------------------------------------------------------------

def model_folder(path, config_changes, tensors):
    path.mkdir()
    config = json.loads((minilm_dir() / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **config_changes}))
    shutil.copy(minilm_dir() / "vocab.txt", path / "vocab.txt")
    save_file(tensors, str(path / "model.safetensors"))
    return path


GPT2_LIKE = {"wte.weight": torch.zeros(8, 4), "h.0.attn.c_attn.weight": torch.zeros(4, 12)}


@pytest.mark.parametrize("config_changes, message", [
    ({"model_type": "gpt2"}, "config.json says model_type 'gpt2', which no family here reads"),
    ({}, "none of its 2 tensors is a parameter of BertForSequenceClassification"),
], ids=["config-says-so", "weights-say-so"])
def test_checkpoint_of_another_architecture_through_run_classifier(small_task, tmp_path, config_changes, message):
    folder = model_folder(tmp_path / "gpt2", config_changes, GPT2_LIKE)
    argv = common_args(small_task, tmp_path / "out") + ["--do_train"]
    argv[argv.index(str(minilm_dir()))] = str(folder)
    with pytest.raises(LoadingError, match=re.escape(message)):
        run_classifier.main(argv)
    assert not (tmp_path / "out").exists()
