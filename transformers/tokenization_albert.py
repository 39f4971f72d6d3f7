"""Step 2 for ALBERT: text -> token ids with a SentencePiece model (`spiece.model`).

Takes raw text (or a pair) and the `spiece.model` that ALBERT was pre-trained with, and hands on the three
lists the model reads: `input_ids`, `token_type_ids`, `attention_mask`, laid out as BERT's
(`[CLS] a [SEP] b [SEP]`, types 0 then 1). albert_zh checkpoints ship BERT's `vocab.txt` instead; for those
the family table uses BertTokenizer, not this file.

SentencePiece cuts text into pieces of a trained unigram vocabulary, with no idea of "words": a space is part
of the piece that follows it, written "▁" (U+2581):

    "Hello wörld!!"  -> prepare -> "hello world!!"  -> SentencePiece -> ["▁hello", "▁world", "!!"]

Before SentencePiece sees the text we do what ALBERT's tokenizer in transformers does, in the same order:
quotes written `` and '' become ", accents are stripped (NFKD, then combining marks dropped) and the text is
lower-cased. SentencePiece then applies the normalization stored in the model (NFKC, whitespace runs folded
into one "▁", a "▁" put in front). The most likely split is then found by `best_split`, word by word, as
transformers does. We do not let SentencePiece split, because of ties: "!!!!" scores the same as "!" + "!!!" and
as "!!!" + "!", and SentencePiece picks the other one than transformers does (about 1 tweet in 300). Both
sides use the same vocabulary and scores, read from spiece.model. tests/test_albert.py checks that the result
equals the reference's, token for token, on real tweets.

Run `python -m transformers.tokenization_albert path/to/spiece_folder "some text"` to see the output.
"""
import argparse
import hashlib
import json
import unicodedata
from types import MappingProxyType

from .compat_2x import accept_default_2x_options, save_vocabulary_2x
from .hub import SHORTCUT_NAMES, local_model_path
from .tokenization_bert import (TOKENIZER_CONFIG_NAME, encode_each, find_tokenizer_files, ids_to_tokens,
                                print_encoding, read_tokenizer_settings, tokens_to_ids)
from .tokenization_utils import lay_out_inputs, save_tokenizer_files

SPIECE_NAME = "spiece.model"
# SentencePiece writes a space as this character, U+2581, at the start of the piece that follows it.
WORD_START = "\u2581"
# ALBERT's special tokens, as its spiece.model holds them (ids 0..4 in every release).
SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}


class AlbertTokenizer:
    """Text (or a text pair) -> input_ids, token_type_ids, attention_mask, with a SentencePiece model."""

    # transformers 2.x's table of shortcut names, per tokenizer file: {"vocab_file": {shortcut: Hub repo id}}.
    pretrained_vocab_files_map = MappingProxyType({"vocab_file": SHORTCUT_NAMES["albert"]})

    def __init__(self, vocab_file, do_lower_case=True, keep_accents=False, **special_tokens):
        import sentencepiece  # a runtime dependency (requirements.txt), needed only for this family

        unknown = set(special_tokens) - set(SPECIAL_TOKENS)
        if unknown:
            raise TypeError(f"AlbertTokenizer has no special token role {sorted(unknown)}; "
                            f"roles are {', '.join(SPECIAL_TOKENS)}")
        self.vocab_file = vocab_file
        self.do_lower_case = do_lower_case
        self.keep_accents = keep_accents
        self.sp_model = sentencepiece.SentencePieceProcessor()
        try:
            self.sp_model.Load(str(vocab_file))
        except (OSError, RuntimeError) as error:
            raise ValueError(f"{vocab_file}: not a readable SentencePiece model ({error})") from None
        self.ids_to_tokens = [self.sp_model.IdToPiece(index) for index in range(self.sp_model.GetPieceSize())]
        # What best_split chooses from: the normal pieces (not <unk>, <pad>, [CLS], ...) and their scores
        # (log-probabilities). <unk> scores 10 below the least likely piece, as in SentencePiece.
        normal = [index for index in range(len(self.ids_to_tokens))
                  if not (self.sp_model.IsControl(index) or self.sp_model.IsUnknown(index))]
        self.piece_ids = {self.ids_to_tokens[index]: index for index in normal}
        self.piece_scores = [self.sp_model.GetScore(index) for index in range(len(self.ids_to_tokens))]
        self.longest_piece = max(map(len, self.piece_ids))
        self.unk_score = min(self.piece_scores[index] for index in normal) - 10.0
        # The pieces' scores decide the split as much as the pieces do; a feature cache is keyed on both.
        self.rules_sha1 = hashlib.sha1(json.dumps(self.piece_scores).encode("utf-8")).hexdigest()
        self.vocab = {token: index for index, token in enumerate(self.ids_to_tokens)}
        self.special = {**SPECIAL_TOKENS, **special_tokens}
        for role, token in self.special.items():
            if token not in self.vocab:
                raise ValueError(f"{vocab_file}: the {role} {token!r} is not one of the model's pieces")
        self.cls_token_id = self.vocab[self.special["cls_token"]]
        self.sep_token_id = self.vocab[self.special["sep_token"]]
        self.pad_token_id = self.vocab[self.special["pad_token"]]
        self.unk_token_id = self.vocab[self.special["unk_token"]]

    @property
    def vocab_size(self):
        return len(self.ids_to_tokens)

    # ---- text -> tokens -> ids ----

    def prepare(self, text):
        """What ALBERT's tokenizer does before SentencePiece: `` and '' -> ", strip accents, lower-case.

        "Ça ``marche''" -> 'ca "marche"'. Accents are stripped by decomposing (NFKD: "ç" -> "c" + U+0327) and
        dropping the non-spacing marks (category Mn) that decomposition split off.
        """
        text = text.replace("``", '"').replace("''", '"')
        if not self.keep_accents:
            text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if unicodedata.category(ch) != "Mn")
        return text.lower() if self.do_lower_case else text

    def encode(self, text):
        """Text -> piece ids: prepare, SentencePiece's normalization, then the best split of each word."""
        normalized = self.sp_model.Normalize(self.prepare(text))  # "Hello  wörld!!" -> "▁hello▁world!!"
        words = [WORD_START + word for word in normalized.split(WORD_START) if word]  # ["▁hello", "▁world!!"]
        return [index for word in words for index in self.best_split(word)]

    def best_split(self, word):
        """The ids of the most likely split of `word` into pieces (Viterbi over the unigram scores).

        best[end] holds the best (score, start, id) of a split of word[:end]. Positions are visited left to
        right and, for each, every piece that starts there; a later candidate replaces the stored one only if
        it scores strictly higher, so on a tie the piece that starts earliest wins: "▁!!!!" -> "▁", "!", "!!!".
        A character no piece covers becomes <unk>, scored below every piece; a run of them is one <unk>.
        """
        best = [None] * (len(word) + 1)
        best[0] = (0.0, 0, None)
        for start in range(len(word)):
            if best[start] is None:
                continue
            base = best[start][0]
            found_single = False
            for end in range(start + 1, min(len(word), start + self.longest_piece) + 1):
                index = self.piece_ids.get(word[start:end])
                if index is None:
                    continue
                found_single = found_single or end == start + 1
                score = base + self.piece_scores[index]
                if best[end] is None or score > best[end][0]:
                    best[end] = (score, start, index)
            if not found_single:
                score = base + self.unk_score
                if best[start + 1] is None or score > best[start + 1][0]:
                    best[start + 1] = (score, start, self.unk_token_id)
        ids, end = [], len(word)
        while end > 0:
            _, start, index = best[end]
            if not (index == self.unk_token_id and ids and ids[-1] == self.unk_token_id):
                ids.append(index)
            end = start
        return ids[::-1]

    def tokenize(self, text):
        """Text -> pieces: "Hello wörld!!" -> ["▁hello", "▁world", "!!"]."""
        return self.convert_ids_to_tokens(self.encode(text))

    def convert_tokens_to_ids(self, tokens):
        return tokens_to_ids(tokens, self.vocab, self.unk_token_id)

    def convert_ids_to_tokens(self, ids):
        return ids_to_tokens(ids, self.ids_to_tokens, self.vocab_file)

    # ---- ids -> model inputs ----

    def encode_plus(self, text, text_pair=None, max_length=None, **options_2x):
        """{"input_ids", "token_type_ids", "attention_mask"}: `[CLS] a [SEP] b [SEP]`, unpadded."""
        accept_default_2x_options(self, options_2x)  # transformers 2.x's options, at their defaults
        ids_a = self.encode(text)
        ids_b = None if text_pair is None else self.encode(text_pair)
        # Truncation follows transformers 5's ALBERT tokenizer (see `truncate_longest_first`).
        return lay_out_inputs(ids_a, ids_b, max_length, self.cls_token_id, self.sep_token_id,
                              odd_token_to_longer=True)

    def batch_encode_plus(self, texts, text_pairs=None, max_length=None):
        return encode_each(self, texts, text_pairs, max_length)

    # ---- loading and saving ----

    @classmethod
    def from_pretrained(cls, path, do_lower_case=None, cache_dir=None, force_download=False, local_files_only=False,
                        revision=None):
        """From a directory holding spiece.model (and optionally tokenizer_config.json), or the file itself.

        do_lower_case=None reads the saved choice, and is True when there is none (every ALBERT release is
        uncased). cache_dir, force_download, local_files_only: accepted for the family table's common call;
        a SentencePiece model is read from local files only.
        """
        path = local_model_path(path, ((SPIECE_NAME,),), optional=(TOKENIZER_CONFIG_NAME,), what=cls.__name__,
                                revision=revision, cache_dir=cache_dir, force_download=force_download,
                                local_files_only=local_files_only)  # a Hub name -> its snapshot folder (hub.py)
        (vocab_file,), config_file = find_tokenizer_files(
            path, ((SPIECE_NAME,),), "SentencePiece model", hint="; an albert_zh folder has vocab.txt instead")
        settings = read_settings(config_file)
        if do_lower_case is not None:
            settings["do_lower_case"] = do_lower_case
        return cls(vocab_file, **settings)

    def save_pretrained(self, save_directory):
        """Writes spiece.model and tokenizer_config.json (what transformers reads); returns their paths."""
        with open(self.vocab_file, "rb") as reader:
            spiece_model = reader.read()
        return save_tokenizer_files(save_directory, {
            SPIECE_NAME: spiece_model,
            TOKENIZER_CONFIG_NAME: {"tokenizer_class": "AlbertTokenizer", "do_lower_case": self.do_lower_case,
                                    "keep_accents": self.keep_accents, **self.special},
        })

    def save_vocabulary(self, vocab_path):
        """transformers 2.x's: copy spiece.model into the folder `vocab_path`; returns (its path,)."""
        with open(self.vocab_file, "rb") as reader:
            return save_vocabulary_2x(self, vocab_path, {SPIECE_NAME: reader.read()})


def read_settings(config_file):
    """do_lower_case, keep_accents and the special tokens of a tokenizer_config.json ({} for None: no file)."""
    if config_file is None:
        return {}
    return read_tokenizer_settings(config_file, ("do_lower_case", "keep_accents"), SPECIAL_TOKENS)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print what AlbertTokenizer makes of a text or a text pair.")
    parser.add_argument("model", help="spiece.model, or a directory holding it")
    parser.add_argument("text")
    parser.add_argument("text_pair", nargs="?")
    args = parser.parse_args(argv)
    tokenizer = AlbertTokenizer.from_pretrained(args.model)
    encoded = tokenizer.encode_plus(args.text, args.text_pair)
    print(f"prepared:       {tokenizer.prepare(args.text)!r}")
    print_encoding(tokenizer, encoded)


if __name__ == "__main__":
    from .file_utils import run_entry_point
    run_entry_point(main, "python -m transformers.tokenization_albert")
