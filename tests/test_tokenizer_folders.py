"""What the four tokenizer families (BERT, ALBERT, RoBERTa, XLNet) share around their files: a save over a
saved folder that fails halfway leaves every file whole, and `python -m transformers.tokenization_<family>`
given a missing folder says so in one line and exits 2.

The tokenizers here are small and made in the test: MiniLM's vocab.txt for BERT, a 300-piece SentencePiece
model trained on tweets for ALBERT and XLNet (with both families' special pieces), a hand-written BPE for RoBERTa.
"""
import os
import subprocess
import sys

import pytest

from _support import REPO_ROOT, minilm_dir, read_tweets
from transformers import tokenization_utils
from transformers.tokenization_albert import AlbertTokenizer
from transformers.tokenization_bert import BertTokenizer
from transformers.tokenization_roberta import RobertaTokenizer
from transformers.tokenization_xlnet import XLNetTokenizer

FAMILIES = ("bert", "albert", "roberta", "xlnet")


@pytest.fixture(scope="module")
def spiece_dir(tmp_path_factory):
    import sentencepiece
    folder = tmp_path_factory.mktemp("spiece")
    # <unk> <s> </s> <pad>, then XLNet's and ALBERT's control pieces: one model serves both families.
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([text for _, text in read_tweets(800)]), model_prefix=str(folder / "spiece"),
        vocab_size=300, model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=3, minloglevel=2, num_threads=1,
        control_symbols=["<cls>", "<sep>", "<mask>", "<eod>", "<eop>", "[CLS]", "[SEP]", "[MASK]"])
    return folder


def make_tokenizer(family, spiece_dir):
    if family == "bert":
        return BertTokenizer.from_pretrained(minilm_dir())
    if family == "albert":
        return AlbertTokenizer.from_pretrained(spiece_dir)
    if family == "xlnet":
        return XLNetTokenizer.from_pretrained(spiece_dir)
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "h", "e", "he", "Ġ", "Ġhe"]
    return RobertaTokenizer({token: index for index, token in enumerate(tokens)}, [("h", "e"), ("Ġ", "he")],
                            "a vocabulary made in the test")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_save_that_fails_halfway_leaves_the_saved_folder_whole(family, spiece_dir, tmp_path, monkeypatch):
    tokenizer = make_tokenizer(family, spiece_dir)
    folder = tmp_path / "saved"
    paths = tokenizer.save_pretrained(folder)
    before = {os.path.basename(path): open(path, "rb").read() for path in paths}
    write_bytes = tokenization_utils._write_bytes

    def write_half_then_fail(path, data):
        """The disk fills up halfway through the first file (the vocabulary)."""
        write_bytes(path, data[:len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokenization_utils, "_write_bytes", write_half_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        tokenizer.save_pretrained(folder)
    monkeypatch.undo()
    # Every file, the one being written included, is as the first save left it, and nothing else is there.
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before
    assert type(tokenizer).from_pretrained(folder).vocab == tokenizer.vocab


# Each family's command line, with the model folder left as "{folder}".
COMMAND_LINES = {
    "bert": ["--vocab", "{folder}", "some text"],
    "albert": ["{folder}", "some text"],
    "roberta": ["{folder}", "some text"],
    "xlnet": ["--model", "{folder}", "some text"],
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_missing_folder_on_the_command_line_is_one_line_and_exit_2(family, tmp_path):
    folder = tmp_path / "no_such_folder"
    module = f"transformers.tokenization_{family}"
    argv = [arg.format(folder=folder) for arg in COMMAND_LINES[family]]
    run = subprocess.run([sys.executable, "-m", module, *argv], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m {module}: error: "), run.stderr
    assert str(folder) in lines[0]


# transformers 2.x's save_vocabulary(vocab_path): the vocabulary files alone, as each family's 2.x tokenizer wrote
# them and returned their paths. The seed's run_classifier.py calls it by keyword at every --save_steps checkpoint.
VOCABULARY_FILES = {"bert": ("vocab.txt",), "albert": ("spiece.model",), "xlnet": ("spiece.model",),
                    "roberta": ("vocab.json", "merges.txt")}


@pytest.mark.parametrize("family", FAMILIES)
def test_save_vocabulary_writes_the_vocabulary_files_and_returns_their_paths(family, spiece_dir, tmp_path):
    tokenizer = make_tokenizer(family, spiece_dir)
    folder = tmp_path / "checkpoint-10"
    folder.mkdir()
    written = tokenizer.save_vocabulary(vocab_path=str(folder))
    assert written == tuple(str(folder / name) for name in VOCABULARY_FILES[family])
    assert sorted(os.listdir(folder)) == sorted(VOCABULARY_FILES[family])
    # The same bytes as the full save writes, and a tokenizer read back from them has the same vocabulary.
    full = tmp_path / "full"
    tokenizer.save_pretrained(full)
    for name in VOCABULARY_FILES[family]:
        assert (folder / name).read_bytes() == (full / name).read_bytes(), name
    if family in ("albert", "xlnet"):
        assert (folder / "spiece.model").read_bytes() == (spiece_dir / "spiece.model").read_bytes()
    assert type(tokenizer).from_pretrained(folder).vocab == tokenizer.vocab


@pytest.mark.parametrize("family", ["albert", "roberta", "xlnet"])
def test_save_vocabulary_into_a_missing_folder_names_it(family, spiece_dir, tmp_path):
    from transformers.file_utils import BadValueError
    missing = tmp_path / "not-made"
    with pytest.raises(BadValueError, match=f"save_vocabulary: {missing} is not a folder"):
        make_tokenizer(family, spiece_dir).save_vocabulary(str(missing))
    assert not missing.exists()
