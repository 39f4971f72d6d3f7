"""Step 2 for XLNet: text -> token ids, with a SentencePiece model.

Takes raw text (one text, or a pair) and a SentencePiece model file (`spiece.model`, as XLNet's checkpoints ship
it) and hands on the three lists an XLNet model reads: `input_ids`, `token_type_ids` and `attention_mask`.

How it differs from BERT's tokenizer (tokenization_bert.py):
  - No word splitting by rules and no `##` pieces: SentencePiece cuts the text into the most probable sequence of
    pieces of its vocabulary (a unigram language model), and marks the start of each word with "▁":
        "Stocks broke out" -> ["▁St", "ocks", "▁broke", "▁out"]     (the pieces depend on the trained model)
  - The special tokens go at the END, and `<cls>` is last:
        a <sep> <cls>                 token_type_ids  0 .. 0   0   2
        a <sep> b <sep> <cls>         token_type_ids  0 .. 0 1 .. 1 2
    XLNet's sequence summary reads the last position (modeling_xlnet.py), which is why batches are padded on the
    LEFT (`padding_side`): then the last position holds `<cls>` in every row.

Text flows through `tokenize` in this order, the same steps as Hugging Face's XLNetTokenizer:
    special tokens written in the text are kept whole ("a <mask> b" -> ..., "<mask>", ...)
    `` and '' become "   ->  accents removed (NFKD, then the combining marks dropped)  ->  lower-case if asked
    -> split at whitespace -> SentencePiece, word by word: its own normalization (NFKC-like), "▁" before the
       word, the most probable pieces.

Run `python -m transformers.tokenization_xlnet --model spiece.model "some text" "a second text"` to see the output.
"""
import argparse
import functools
import re
import unicodedata
from types import MappingProxyType

from .compat_2x import accept_default_2x_options, save_vocabulary_2x
from .hub import SHORTCUT_NAMES, local_model_path
from .tokenization_bert import (TOKENIZER_CONFIG_NAME, encode_each, find_tokenizer_files, print_encoding,
                                read_tokenizer_settings)
from .tokenization_utils import save_tokenizer_files, truncate_longest_first

SPIECE_NAME = "spiece.model"
WORD_START = "\u2581"  # "▁", which SentencePiece writes before every word
# How far below the least likely piece an unknown character scores (SentencePiece's and the reference's value).
UNKNOWN_PENALTY = 10.0

# Segment ids, as XLNet's pre-training code numbers them. The model only asks whether two tokens' ids are equal
# (modeling_xlnet.py), so what matters is that <cls> and padding differ from the texts' 0 and 1.
SEGMENT_A, SEGMENT_B, SEGMENT_CLS, SEGMENT_PAD = 0, 1, 2, 4

# The settings tokenizer_config.json may hold that change how text is cut, and the special tokens' roles.
SETTINGS = ("do_lower_case", "remove_space", "keep_accents")
SPECIAL_TOKEN_ROLES = ("unk_token", "bos_token", "eos_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _sentencepiece():
    try:
        import sentencepiece
    except ImportError:
        raise ImportError("XLNet's tokenizer reads spiece.model with the sentencepiece package; "
                          "install it: pip install sentencepiece") from None
    return sentencepiece


class XLNetTokenizer:
    """Text (or a text pair) -> input_ids, token_type_ids, attention_mask for an XLNet model."""

    # transformers 2.x's table of shortcut names, per tokenizer file: {"vocab_file": {shortcut: Hub repo id}}.
    pretrained_vocab_files_map = MappingProxyType({"vocab_file": SHORTCUT_NAMES["xlnet"]})

    # Batches are padded on the left, so that <cls> is the last position of every row (see the module docstring).
    padding_side = "left"
    pad_token_type_id = SEGMENT_PAD

    def __init__(self, vocab_file, do_lower_case=False, remove_space=True, keep_accents=False, unk_token="<unk>",
                 bos_token="<s>", eos_token="</s>", sep_token="<sep>", pad_token="<pad>", cls_token="<cls>",
                 mask_token="<mask>", additional_special_tokens=("<eop>", "<eod>")):
        self.vocab_file = vocab_file
        self.do_lower_case, self.remove_space, self.keep_accents = do_lower_case, remove_space, keep_accents
        self.sp_model = _sentencepiece().SentencePieceProcessor(model_file=vocab_file)
        # {piece: (id, score)} for the unigram search in `best_pieces`; scores are log-probabilities.
        self._pieces = {self.sp_model.id_to_piece(index): (index, self.sp_model.get_score(index))
                        for index in range(self.sp_model.get_piece_size())}
        self._longest_piece = max(map(len, self._pieces))
        self._unknown_score = min(score for _, score in self._pieces.values()) - UNKNOWN_PENALTY
        self.unk_token, self.bos_token, self.eos_token = unk_token, bos_token, eos_token
        self.sep_token, self.pad_token, self.cls_token, self.mask_token = sep_token, pad_token, cls_token, mask_token
        self.special_tokens = (unk_token, bos_token, eos_token, sep_token, pad_token, cls_token, mask_token,
                               *additional_special_tokens)
        for token in self.special_tokens:
            # piece_to_id answers unk's id for a piece it does not know; only unk itself may have that id.
            if self.sp_model.piece_to_id(token) == self.sp_model.unk_id() and token != unk_token:
                raise ValueError(f"special token {token!r} is not in the SentencePiece model {vocab_file}")
        self.unk_token_id = self.sp_model.piece_to_id(unk_token)
        self.sep_token_id = self.sp_model.piece_to_id(sep_token)
        self.pad_token_id = self.sp_model.piece_to_id(pad_token)
        self.cls_token_id = self.sp_model.piece_to_id(cls_token)
        self.mask_token_id = self.sp_model.piece_to_id(mask_token)
        # A special token written in the text is that token, as in tokenization_bert: "x<sep>y" -> x, <sep>, y.
        # Longest first, so that "</s>" is not read as "<s>" inside something else.
        by_length = sorted(set(self.special_tokens), key=len, reverse=True)
        self._special_token_split = re.compile("(" + "|".join(map(re.escape, by_length)) + ")")

    @property
    def vocab_size(self):
        return self.sp_model.get_piece_size()

    @property
    def ids_to_tokens(self):
        """Every piece, in id order, as BertTokenizer.ids_to_tokens."""
        return [self.sp_model.id_to_piece(index) for index in range(self.vocab_size)]

    @property
    def vocab(self):
        """{piece: id} for every piece of the model, as BertTokenizer.vocab (the feature cache hashes it)."""
        return {piece: index for index, piece in enumerate(self.ids_to_tokens)}

    # ---- text -> tokens -> ids ----

    def preprocess_text(self, text):
        """What happens before SentencePiece sees the text: "Café ``ok''" -> 'Cafe "ok"'."""
        if self.remove_space:
            text = " ".join(text.strip().split())
        text = text.replace("``", '"').replace("''", '"')
        if not self.keep_accents:
            # NFKD writes "é" as "e" + a combining accent (a non-spacing mark, category Mn); dropping the marks
            # leaves "e". XLNet's vocabulary was built from text treated this way.
            text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if unicodedata.category(ch) != "Mn")
        if self.do_lower_case:
            text = text.lower()
        return text

    def tokenize(self, text):
        """Text -> pieces: "the <mask> stocks" -> ["▁the", "<mask>", "▁stock", "s"] (pieces depend on the model)."""
        tokens = []
        for chunk in self._special_token_split.split(text):
            if chunk in self.special_tokens:
                tokens.append(chunk)
            elif chunk:
                # SentencePiece's normalizer writes each run of whitespace as one "▁":
                # "due  to \"air\"" -> "▁due▁to▁\"air\"". Each word, "▁" included, is then cut on its own.
                normalized = self.sp_model.normalize(self.preprocess_text(chunk))
                for word in normalized.split(WORD_START):
                    if word:
                        tokens.extend(self.best_pieces(WORD_START + word))
        return tokens

    def best_pieces(self, word):
        """The most probable pieces of one word under the unigram model: "▁stocks" -> ["▁stock", "s"].

        A piece's score is its log-probability, so the best cut has the highest sum of scores (Viterbi: the
        best cut of word[:end], for each end from left to right). SentencePiece's own `encode` finds the same
        best cuts, but breaks exact ties differently: "!!!!!!!" scores the same as "!" "!!!" "!!!" and as
        "!!!" "!!!" "!", and which one wins depends on float rounding in a running sum over the whole text.
        The reference cuts word by word, summing in float64 from 0 at each word, and keeps the first cut found
        on a tie; this does the same, so that the ids agree with it exactly.
        A character in no piece is <unk>, scored below every piece; consecutive ones make one <unk>.
        """
        pieces, unknown = self._pieces, self.unk_token_id
        # best[end] = (score of the best cut of word[:end], where its last piece starts, that piece's id)
        best = [(0.0, None, None)] + [(None, None, None)] * len(word)
        for start in range(len(word)):
            so_far = best[start][0]
            for end in range(start + 1, min(len(word), start + self._longest_piece) + 1):
                found = pieces.get(word[start:end])
                if found is not None and (best[end][0] is None or so_far + found[1] > best[end][0]):
                    best[end] = (so_far + found[1], start, found[0])
            if word[start] not in pieces and (best[start + 1][0] is None
                                              or so_far + self._unknown_score > best[start + 1][0]):
                best[start + 1] = (so_far + self._unknown_score, start, unknown)
        # Walk back from the end; runs of <unk> characters become one token.
        cut, end = [], len(word)
        while end > 0:
            _, start, piece_id = best[end]
            if piece_id == unknown and cut and cut[-1][1] == unknown:
                cut[-1] = (word[start:end] + cut[-1][0], unknown)
            else:
                cut.append((word[start:end], piece_id))
            end = start
        return [piece for piece, _ in reversed(cut)]

    def convert_tokens_to_ids(self, tokens):
        """Pieces not in the model map to unk_token_id."""
        if isinstance(tokens, str):
            raise TypeError(f"convert_tokens_to_ids takes a list of tokens, got the string {tokens!r}")
        return [self.sp_model.piece_to_id(token) for token in tokens]

    def convert_ids_to_tokens(self, ids):
        size = self.vocab_size
        for index in ids:
            if not 0 <= index < size:
                raise ValueError(f"token id {index} is not in the SentencePiece model {self.vocab_file} "
                                 f"(ids run from 0 to {size - 1})")
        return [self.sp_model.id_to_piece(index) for index in ids]

    # ---- ids -> model inputs ----

    def encode_plus(self, text, text_pair=None, max_length=None, **options_2x):
        """{"input_ids", "token_type_ids", "attention_mask"} for one text or one pair. No padding: batches are
        padded (on the left, see `padding_side`) to their own longest row.

        With max_length, tokens are cut from the end of the longer text first (`truncate_longest_first`) so
        that the result, <sep> and <cls> included, is at most max_length long.
        """
        accept_default_2x_options(self, options_2x)  # transformers 2.x's options, at their defaults
        ids_a = self.convert_tokens_to_ids(self.tokenize(text))
        ids_b = None if text_pair is None else self.convert_tokens_to_ids(self.tokenize(text_pair))
        if max_length is not None:
            num_special = 2 if ids_b is None else 3
            if max_length < num_special:
                raise ValueError(f"max_length={max_length} leaves no room: <sep> and <cls> alone take "
                                 f"{num_special} positions")
            ids_a, ids_b = truncate_longest_first(ids_a, ids_b, max_length - num_special)

        # "a <sep> b <sep> <cls>" -> segments 0 .. 0 0 1 .. 1 1 2: each <sep> belongs to the text it closes.
        input_ids = ids_a + [self.sep_token_id]
        token_type_ids = [SEGMENT_A] * len(input_ids)
        if ids_b is not None:
            input_ids += ids_b + [self.sep_token_id]
            token_type_ids += [SEGMENT_B] * (len(ids_b) + 1)
        input_ids.append(self.cls_token_id)
        token_type_ids.append(SEGMENT_CLS)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": [1] * len(input_ids)}

    def batch_encode_plus(self, texts, text_pairs=None, max_length=None):
        return encode_each(self, texts, text_pairs, max_length)

    # ---- loading and saving ----

    @classmethod
    def from_pretrained(cls, path, do_lower_case=None, cache_dir=None, force_download=False, local_files_only=False,
                        revision=None):
        """From a directory (spiece.model, optionally tokenizer_config.json), a .model file, or a URL of either.

        do_lower_case=None reads it from tokenizer_config.json, and is False when there is none: XLNet's
        released models are cased.

        A folder saved by transformers 5 holds tokenizer.json instead of spiece.model; this tokenizer reads
        SentencePiece's own file only, and says so.
        """
        from .file_utils import cached_path
        path = local_model_path(path, ((SPIECE_NAME,),), optional=(TOKENIZER_CONFIG_NAME,), what=cls.__name__,
                                revision=revision, cache_dir=cache_dir, force_download=force_download,
                                local_files_only=local_files_only)  # a Hub name -> its snapshot folder (hub.py)
        fetch = functools.partial(cached_path, cache_dir=cache_dir, force_download=force_download,
                                  local_files_only=local_files_only)
        (vocab_file,), config_file = find_tokenizer_files(path, ((SPIECE_NAME,),), "SentencePiece model", fetch)
        settings = read_xlnet_tokenizer_config(config_file) if config_file else {}
        if do_lower_case is not None:
            settings["do_lower_case"] = do_lower_case
        return cls(vocab_file, **settings)

    def save_pretrained(self, save_directory):
        """Writes spiece.model and tokenizer_config.json (both readable by transformers); returns their paths."""
        with open(self.vocab_file, "rb") as reader:
            spiece_model = reader.read()
        special = {role: getattr(self, role) for role in SPECIAL_TOKEN_ROLES}
        settings = {name: getattr(self, name) for name in SETTINGS}
        return save_tokenizer_files(save_directory, {
            SPIECE_NAME: spiece_model,
            TOKENIZER_CONFIG_NAME: {"tokenizer_class": "XLNetTokenizer", "padding_side": self.padding_side,
                                    **settings, **special},
        })

    def save_vocabulary(self, vocab_path):
        """transformers 2.x's: copy spiece.model into the folder `vocab_path`; returns (its path,). The seed's
        run_classifier.py calls it at every --save_steps checkpoint. save_pretrained writes it too, with the
        tokenizer's settings."""
        with open(self.vocab_file, "rb") as reader:
            return save_vocabulary_2x(self, vocab_path, {SPIECE_NAME: reader.read()})


def read_xlnet_tokenizer_config(config_file):
    """The settings of a tokenizer_config.json that change how XLNet's tokenizer cuts text, as keyword arguments.
    Special tokens may be written as strings or, by older versions, as {"content": "<sep>", ...} objects."""
    return read_tokenizer_settings(config_file, SETTINGS, SPECIAL_TOKEN_ROLES)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Show how XLNet's tokenizer cuts text into ids.")
    parser.add_argument("texts", nargs="+", help="one text, or two for a pair")
    parser.add_argument("--model", required=True, help="spiece.model, or a folder holding it")
    args = parser.parse_args(argv)
    tokenizer = XLNetTokenizer.from_pretrained(args.model)
    encoded = tokenizer.encode_plus(args.texts[0], args.texts[1] if len(args.texts) > 1 else None)
    print_encoding(tokenizer, encoded)


if __name__ == "__main__":
    from .file_utils import run_entry_point
    run_entry_point(main, "python -m transformers.tokenization_xlnet")
