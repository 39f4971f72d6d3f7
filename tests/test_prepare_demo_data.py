"""prepare_demo_data repairs UTF-8 that was read as windows-1252 and drops tweets whose garbling cannot be
undone, on the real corpus: the first examples a reader sees are tweets, not mojibake."""
import pytest

from bert_read_step_to_step import prepare_demo_data


@pytest.fixture(scope="module")
def corpus():
    return prepare_demo_data.load_corpus(prepare_demo_data.corpus_path())


def test_utf8_read_as_windows_1252_is_repaired():
    assert prepare_demo_data.repair_mojibake("itâ€™s a cafÃ© â€œtestâ€\x9d") == "it’s a café “test”"
    # A real accented letter, and a run that is not UTF-8 once encoded back, stay as they are.
    assert prepare_demo_data.repair_mojibake("Bogotá, naïve") == "Bogotá, naïve"
    assert prepare_demo_data.repair_mojibake("claritin D.äó»_äó»") == "claritin D.äó»_äó»"


def test_real_tweets_garbled_the_common_way_come_back_exactly(corpus):
    """Real corpus tweets with non-ASCII characters, garbled as UTF-8 read by windows-1252, are repaired to
    the very same text; clean ones are left alone."""
    samples = [text for _, text in corpus.examples if any(ord(ch) > 127 for ch in text)
               and all(ch in prepare_demo_data._CP1252_CHARS or ord(ch) < 128 for ch in text)]
    clean = [text for _, text in corpus.examples[:500]]
    assert len(samples) >= 2  # "Bogot’", "Σ130"-like lines: real text with cp1252 characters
    for text in samples + clean:
        garbled = text.encode("utf-8").decode("cp1252", errors="strict") if _encodable(text) else None
        if garbled is not None and garbled != text:
            assert prepare_demo_data.repair_mojibake(garbled) == text
        assert prepare_demo_data.repair_mojibake(text) == text


def _encodable(text):
    try:
        text.encode("utf-8").decode("cp1252")
        return True
    except UnicodeDecodeError:
        return False


def test_garbled_emoji_are_dropped_and_counted(corpus, tmp_path, capsys):
    raw = prepare_demo_data.corpus_path().read_bytes()
    assert b"\xe4\xf3\xbb_\xe4\xf3\xbb" in raw  # the corpus really holds such tweets ("äó»_äó»")
    assert corpus.dropped > 1000
    assert not any(prepare_demo_data.is_garbled(text) for _, text in corpus.examples)
    assert not any("äó»" in text or "Õ£" in text for _, text in corpus.examples)
    prepare_demo_data.main(["--out", str(tmp_path), "--train", "50", "--dev", "20", "--test", "20"])
    assert f"dropped {corpus.dropped} whose garbled emoji cannot be repaired" in capsys.readouterr().out


def test_the_first_examples_of_the_demo_data_are_not_mojibake(tmp_path):
    prepare_demo_data.main(["--out", str(tmp_path)])
    for split in ("train", "dev", "test"):
        lines = (tmp_path / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        assert not any(prepare_demo_data.is_garbled(line) for line in lines), split
        assert all(ord(ch) < 128 for ch in "".join(lines[:5])), split
