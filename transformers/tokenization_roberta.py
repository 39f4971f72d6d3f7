"""Step 2 for RoBERTa: text -> token ids with byte-level BPE (`vocab.json` + `merges.txt`).

Takes raw text (or a pair) and RoBERTa's two vocabulary files, and hands on `input_ids`, `token_type_ids` (all
0: RoBERTa has one segment type) and `attention_mask`, laid out as `<s> a </s> </s> b </s>`.

Byte-level BPE works on the UTF-8 bytes of the text, so no character is ever unknown. Text flows through the
pieces of this file in the order they are defined:

    pre-tokenize   "Hello  world's 42!"  -> ["Hello", " ", " world", "'s", " 42", "!"]   (words keep their space)
    to bytes       " world"              -> "Ġworld"       (each byte shown as one printable character;
                                                            the space byte 0x20 is "Ġ")
    BPE            "Ġworld"              -> ["Ġw", "orld"] or ["Ġworld"]: the merges of merges.txt, best first
    ids            vocab.json            {"Ġworld": 995, ...}

This is the scheme of GPT-2 and RoBERTa; tests/test_roberta.py checks that we produce the same ids as the
reference's (Rust) tokenizer on real tweets, with a BPE trained on tweets inside the test.

Run `python -m transformers.tokenization_roberta path/to/folder "some text"` to see the output.
"""
import argparse
import functools
import hashlib
import json
import re
from types import MappingProxyType

from .compat_2x import accept_default_2x_options, save_vocabulary_2x
from .hub import SHORTCUT_NAMES, local_model_path
from .tokenization_bert import (TOKENIZER_CONFIG_NAME, TOKENIZER_JSON_NAME, _category_runs, _ranges_text, encode_each,
                                find_tokenizer_files, ids_to_tokens, print_encoding, read_tokenizer_settings,
                                tokens_to_ids)
from .tokenization_utils import lay_out_inputs, save_tokenizer_files

VOCAB_JSON_NAME = "vocab.json"
MERGES_NAME = "merges.txt"
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                  "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}

# Unicode's White_Space characters: what the reference's regex engine means by \s. Python's \s also matches
# U+001C..U+001F (information separators), which the reference treats as ordinary symbols.
WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


# ---- pre-tokenize ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def word_pattern():
    """GPT-2's split of text into words, each word keeping the one space in front of it:

        's|'t|'re|'ve|'m|'ll|'d      English contractions, on their own: "world's" -> "world", "'s"
         ?\\p{L}+                     letters, with an optional leading space
         ?\\p{N}+                     digits (any script's numbers)
         ?[^\\s\\p{L}\\p{N}]+           other symbols: "!!", "@", "😀"
        \\s+(?!\\S)                    spaces before spaces: "a   b" -> "a", "  ", " b" (the last space goes
        \\s+                          with the word after it); trailing spaces

    Python's `re` has no \\p{L}; the letter and number classes are built from Unicode categories (L*, N*).
    """
    runs = _category_runs()
    letters = _ranges_text([(a, b) for a, b, category in runs if category.startswith("L")])
    numbers = _ranges_text([(a, b) for a, b, category in runs if category.startswith("N")])
    space, not_space = f"[{WHITE_SPACE}]", f"[^{WHITE_SPACE}]"
    return re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{WHITE_SPACE}{letters}{numbers}]+"
                      rf"|{space}+(?!{not_space})|{space}+")


# ---- to bytes --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def byte_to_char():
    """[char of byte 0, ..., char of byte 255]: every byte as one printable character.

    Bytes that are printable Latin-1 characters ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the other
    68 (control bytes, the space, ...) take the characters from U+0100 on, in byte order: the space 0x20 is
    the 33rd of them, "Ġ" (U+0120). BPE's vocabulary and merges are written in these characters.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


# ---- BPE -------------------------------------------------------------------------------------------------

def read_merges(merges_file):
    """merges.txt -> [("Ġ", "t"), ("h", "e"), ...], best first. The first line may be "#version: ..."."""
    with open(merges_file, encoding="utf-8") as reader:
        lines = reader.read().split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = []
    for number, line in enumerate(lines, start=2):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{merges_file}, line {number}: expected two symbols separated by a space, "
                             f"got {line!r}")
        merges.append(tuple(parts))
    return merges


class RobertaTokenizer:
    """Text (or a text pair) -> input_ids, token_type_ids, attention_mask for a RoBERTa model."""

    # transformers 2.x's table of shortcut names, per tokenizer file: {"vocab_file": {shortcut: Hub repo id}}.
    pretrained_vocab_files_map = MappingProxyType({"vocab_file": SHORTCUT_NAMES["roberta"],
                                                   "merges_file": SHORTCUT_NAMES["roberta"]})

    def __init__(self, vocab, merges, vocab_file, **special_tokens):
        """vocab: {token: id}; merges: [(left, right)] best first; vocab_file: where they came from (messages)."""
        unknown = set(special_tokens) - set(SPECIAL_TOKENS)
        if unknown:
            raise TypeError(f"RobertaTokenizer has no special token role {sorted(unknown)}; "
                            f"roles are {', '.join(SPECIAL_TOKENS)}")
        self.vocab_file = vocab_file
        self.vocab = vocab
        by_id = {index: token for token, index in vocab.items()}
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{vocab_file}: token ids must run 0..{len(by_id) - 1} without gaps")
        self.ids_to_tokens = [by_id[index] for index in range(len(by_id))]
        self.merges = merges
        # The rank of a merge is its line: a lower rank is applied first.
        self.merge_ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.special = {**SPECIAL_TOKENS, **special_tokens}
        for role, token in self.special.items():
            if token not in vocab:
                raise ValueError(f"{vocab_file}: the {role} {token!r} is not in the vocabulary")
        self.cls_token_id = vocab[self.special["cls_token"]]
        self.sep_token_id = vocab[self.special["sep_token"]]
        self.pad_token_id = vocab[self.special["pad_token"]]
        self.unk_token_id = vocab[self.special["unk_token"]]
        specials = sorted(set(self.special.values()), key=len, reverse=True)
        # A special token written in the text stays that token ("a <mask> b"), as in the reference.
        self._special_split = re.compile("(" + "|".join(map(re.escape, specials)) + ")")
        self._byte_chars = byte_to_char()
        # The merges decide the split as much as the vocabulary does; a feature cache is keyed on both.
        self.rules_sha1 = hashlib.sha1(json.dumps(merges).encode("utf-8")).hexdigest()
        self.bpe = functools.lru_cache(maxsize=65536)(self._bpe)

    @property
    def vocab_size(self):
        return len(self.ids_to_tokens)

    def _bpe(self, word):
        """One pre-tokenized word, as byte characters -> its BPE pieces.

        Start from single characters and repeatedly merge the adjacent pair whose merge ranks best (every
        occurrence of that pair at once), until no adjacent pair has a merge:
            "Ġlower" -> Ġ l o w e r -> Ġl o w e r -> Ġl ow e r -> Ġlow e r -> Ġlow er
        """
        symbols = list(word)
        while len(symbols) > 1:
            ranked = [(self.merge_ranks.get(pair), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
            ranked = [(rank, i) for rank, i in ranked if rank is not None]
            if not ranked:
                break
            best = min(ranked)[0]
            left, right = self.merges[best]
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(symbols)

    # ---- text -> tokens -> ids ----

    def tokenize(self, text):
        """Text -> BPE tokens: "Hello world!" -> ["Hello", "Ġworld", "!"] (with a vocabulary that has them)."""
        tokens = []
        for chunk in self._special_split.split(text):
            if chunk in self.special.values():
                tokens.append(chunk)
                continue
            for word in word_pattern().findall(chunk):
                as_chars = "".join(self._byte_chars[byte] for byte in word.encode("utf-8"))
                tokens.extend(self.bpe(as_chars))
        return tokens

    def convert_tokens_to_ids(self, tokens):
        return tokens_to_ids(tokens, self.vocab, self.unk_token_id)

    def convert_ids_to_tokens(self, ids):
        return ids_to_tokens(ids, self.ids_to_tokens, self.vocab_file)

    # ---- ids -> model inputs ----

    def encode_plus(self, text, text_pair=None, max_length=None, **options_2x):
        """{"input_ids", "token_type_ids", "attention_mask"}: `<s> a </s> </s> b </s>`, types all 0, unpadded."""
        accept_default_2x_options(self, options_2x)  # transformers 2.x's options, at their defaults
        ids_a = self.convert_tokens_to_ids(self.tokenize(text))
        ids_b = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))
        # Truncation follows transformers 5's RoBERTa tokenizer (see `truncate_longest_first`).
        return lay_out_inputs(ids_a, ids_b, max_length, self.cls_token_id, self.sep_token_id,
                              separators_between=2, type_b=0, odd_token_to_longer=True)

    def batch_encode_plus(self, texts, text_pairs=None, max_length=None):
        return encode_each(self, texts, text_pairs, max_length)

    # ---- loading and saving ----

    @classmethod
    def from_pretrained(cls, path, do_lower_case=None, cache_dir=None, force_download=False, local_files_only=False,
                        revision=None):
        """From a directory holding vocab.json + merges.txt, or the tokenizer.json that transformers 5 saves
        (a BPE model holds the same two lists). RoBERTa is cased and never lower-cases: do_lower_case must not
        be True. cache_dir, force_download, local_files_only: accepted for the family table's common call; the
        files are read from local folders only."""
        if do_lower_case:
            raise ValueError("RoBERTa's byte-level BPE is cased: --do_lower_case does not apply to it")
        layouts = ((VOCAB_JSON_NAME, MERGES_NAME), (TOKENIZER_JSON_NAME,))
        path = local_model_path(path, layouts, optional=(TOKENIZER_CONFIG_NAME,), what=cls.__name__,
                                revision=revision, cache_dir=cache_dir, force_download=force_download,
                                local_files_only=local_files_only)  # a Hub name -> its snapshot folder (hub.py)
        files, config_file = find_tokenizer_files(
            path, layouts, "RoBERTa's BPE vocabulary",
            hint="; a RoBERTa folder with vocab.txt is Chinese RoBERTa-wwm, which is read as BERT")
        special = read_special_tokens(config_file)
        if len(files) == 2:
            vocab_file, merges_file = files
            with open(vocab_file, encoding="utf-8") as reader:
                vocab = json.load(reader)
            return cls(vocab, read_merges(merges_file), vocab_file, **special)
        (json_file,) = files
        vocab, merges = read_bpe_tokenizer_json(json_file)
        return cls(vocab, merges, json_file, **special)

    def save_pretrained(self, save_directory):
        """Writes vocab.json, merges.txt and tokenizer_config.json; returns their paths."""
        return save_tokenizer_files(save_directory, {
            **self._vocabulary_files(),
            TOKENIZER_CONFIG_NAME: {"tokenizer_class": "RobertaTokenizer", "add_prefix_space": False, **self.special},
        })

    def save_vocabulary(self, vocab_path):
        """transformers 2.x's: write vocab.json and merges.txt into the folder `vocab_path`; returns both paths."""
        return save_vocabulary_2x(self, vocab_path, self._vocabulary_files())

    def _vocabulary_files(self):
        return {VOCAB_JSON_NAME: json.dumps(self.vocab, ensure_ascii=False),
                MERGES_NAME: "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in self.merges)}


def read_special_tokens(config_file):
    """The special tokens a tokenizer_config.json names ({} for None: no file)."""
    if config_file is None:
        return {}
    special = read_tokenizer_settings(config_file, ("add_prefix_space",), SPECIAL_TOKENS)
    if special.pop("add_prefix_space", False):
        raise ValueError(f"{config_file}: add_prefix_space is true; only RoBERTa's own setting (false) is supported")
    return special


def read_bpe_tokenizer_json(path):
    """({token: id}, [(left, right)]) of a tokenizer.json whose model is BPE. Merges are written "a b" by
    older versions of the `tokenizers` library and ["a", "b"] by newer ones."""
    try:
        with open(path, encoding="utf-8") as reader:
            data = json.load(reader)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        found = model.get("type") if isinstance(model, dict) else None
        raise ValueError(f"{path}: not a BPE tokenizer (model type {found!r}); RoBERTa needs byte-level BPE")
    vocab = dict(model["vocab"])
    for added in data.get("added_tokens") or []:
        vocab.setdefault(added["content"], added["id"])
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in model["merges"]]
    return vocab, merges


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print what RobertaTokenizer makes of a text or a text pair.")
    parser.add_argument("model", help="a folder with vocab.json and merges.txt (or tokenizer.json)")
    parser.add_argument("text")
    parser.add_argument("text_pair", nargs="?")
    args = parser.parse_args(argv)
    tokenizer = RobertaTokenizer.from_pretrained(args.model)
    encoded = tokenizer.encode_plus(args.text, args.text_pair)
    print(f"words:          {word_pattern().findall(args.text)}")
    print_encoding(tokenizer, encoded)


if __name__ == "__main__":
    from .file_utils import run_entry_point
    run_entry_point(main, "python -m transformers.tokenization_roberta")
