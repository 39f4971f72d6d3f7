"""What transformers 2.x scripts (such as Read_Bert_Code's run_classifier.py) call that this package's own
path does not need: their extra `from_pretrained` arguments, the tokenizer's 2.x `encode_plus` options,
`resize_token_embeddings`, and the check of the config's output switches.

The reading path does not have to read this file. It sits one floor above what it adapts and is imported
only from above (tests/test_layout.py::test_the_2x_adapter_sits_above_what_it_adapts):

    modeling_utils.py (PreTrainedModel)  ->  compat_2x.PreTrainedModel2x  ->  every family's model classes
    tokenization_utils.py (primitives)   ->  compat_2x.TokenizerCompat2x  ->  tokenization_bert.BertTokenizer

modeling_utils.py and tokenization_utils.py never import this file. Each family's model classes derive from
PreTrainedModel2x, which takes 2.x's from_pretrained arguments and then calls PreTrainedModel.from_pretrained;
BertTokenizer derives from TokenizerCompat2x, and its encode_plus hands 2.x's options to encode_plus_2x.

The rule for 2.x's arguments: one that means nothing here is accepted and documented in place (e.g.
`from_tf=False`); one that cannot be honoured is a one-line error naming it. Never another meaning.
"""
import os
import re

import torch

from .file_utils import VOCAB_NAME, BadValueError
from .modeling_utils import Embedding, PreTrainedModel, init_parameter
from .tf_checkpoint import find_checkpoint_index
from .tokenization_utils import lay_out_inputs, save_tokenizer_files, truncate_longest_first


class Unsupported2xArgument(BadValueError):
    """A transformers 2.x argument that this package cannot honour."""


# ---- from_pretrained ---------------------------------------------------------------------------------------

# 2.x download options that mean nothing here: cached_path has no proxies switch (requests reads the usual
# HTTPS_PROXY variables) and always resumes nothing. Accepted with their "off" value only.
IGNORED_WHEN_OFF = {"proxies": None, "resume_download": False}


def adapt_2x_model_arguments(path, from_tf=False, proxies=None, resume_download=False):
    """The path for `PreTrainedModel.from_pretrained`, once 2.x's own arguments are read.

    from_tf: 2.x needed to be told that the weights are a TensorFlow checkpoint. Here the files say so
        (a folder with *.ckpt.index, or the .index itself) and are read without TensorFlow, so from_tf=False
        is accepted and changes nothing. from_tf=True is checked: the path must be such a checkpoint. A
        checkpoint prefix (`model.ckpt`, as 2.x took it) is turned into its `.index`.
    proxies=None, resume_download=False: accepted (see IGNORED_WHEN_OFF); any other value is an error.
    """
    for name, value in (("proxies", proxies), ("resume_download", resume_download)):
        if value != IGNORED_WHEN_OFF[name]:
            raise Unsupported2xArgument(f"from_pretrained({name}=...): not supported here; "
                                        f"leave it {IGNORED_WHEN_OFF[name]!r}")
    return _tf_checkpoint_index(path) if from_tf else path


def _tf_checkpoint_index(path):
    path = os.fspath(path)
    if path.endswith(".index") and os.path.isfile(path):
        return path
    if os.path.isfile(path + ".index"):
        return path + ".index"
    if os.path.isdir(path) and find_checkpoint_index(path) is not None:
        return path
    raise Unsupported2xArgument(f"from_pretrained({path!r}, from_tf=True): no TensorFlow checkpoint there "
                                "(expected a *.ckpt prefix, its .index, or a folder holding one)")


def check_output_switches(model):
    """Refuse config switches the model cannot honour, when it is built (not at its first forward).

    output_hidden_states: BERT's models (and RoBERTa, which reuses BERT's encoder) append every layer's
    hidden states to their output, as 2.x did. output_attentions: BertModel and BertForSequenceClassification
    append every layer's attention probabilities after them; elsewhere it is refused.
    """
    config = model.config
    if config.output_attentions and not getattr(model, "returns_attentions", False):
        raise Unsupported2xArgument(f"{type(model).__name__}: output_attentions=True is supported by BertModel and "
                                    "BertForSequenceClassification only; set it False")
    if config.output_hidden_states and not getattr(model, "returns_hidden_states", False):
        raise Unsupported2xArgument(f"{type(model).__name__}: output_hidden_states=True is supported by BERT's "
                                    "and RoBERTa's models only; set it False")


# ---- resize_token_embeddings -------------------------------------------------------------------------------

def resize_token_embeddings(model, new_num_tokens=None):
    """Give the word-embedding table `new_num_tokens` rows (after `tokenizer.add_tokens`); return the table.

    Rows the old table had keep their values; new rows are drawn by the init rule (N(0, initializer_range)).
    `config.vocab_size` follows. A masked-LM decoder tied to the table (BertForMaskedLM) is tied again, and its
    bias resized the same way. new_num_tokens=None returns the table unchanged, as in 2.x.
    """
    base = getattr(model, model.base_model_prefix, model)
    embeddings = getattr(getattr(base, "embeddings", None), "word_embeddings", None)
    if embeddings is None:
        raise Unsupported2xArgument(f"{type(model).__name__}.resize_token_embeddings: no embeddings.word_embeddings "
                                    "to resize (supported for BERT's and RoBERTa's models)")
    if new_num_tokens is None or new_num_tokens == embeddings.num_embeddings:
        return embeddings
    old_rows, width = embeddings.weight.shape
    resized = Embedding(new_num_tokens, width, padding_idx=embeddings.padding_idx)
    resized.to(embeddings.weight.device, embeddings.weight.dtype)
    init_parameter(resized, "weight", model.config.initializer_range)
    kept = min(old_rows, new_num_tokens)
    with torch.no_grad():
        resized.weight[:kept] = embeddings.weight[:kept]
    base.embeddings.word_embeddings = resized
    model.config.vocab_size = new_num_tokens
    model.tie_weights()
    return resized


# ---- the models' base: PreTrainedModel with transformers 2.x's surface ----------------------------------

class PreTrainedModel2x(PreTrainedModel):
    """PreTrainedModel as transformers 2.x scripts call it; every family's model classes derive from this.

    It adds what 2.x had and the reading path does not need: from_pretrained's from_tf, proxies and
    resume_download, `resize_token_embeddings`, and the refusal of output switches a model cannot honour.
    """

    def __init__(self, config):
        super().__init__(config)
        check_output_switches(self)  # output_hidden_states / output_attentions, refused where not honoured

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, from_tf=False, proxies=None,
                        resume_download=False, **kwargs):
        """PreTrainedModel.from_pretrained, after 2.x's from_tf, proxies and resume_download are read
        (`adapt_2x_model_arguments` says what each means here)."""
        path = adapt_2x_model_arguments(pretrained_model_name_or_path, from_tf, proxies, resume_download)
        return super().from_pretrained(path, *args, **kwargs)

    def resize_token_embeddings(self, new_num_tokens=None):
        """transformers 2.x's: the word-embedding table with new_num_tokens rows (see the function above)."""
        return resize_token_embeddings(self, new_num_tokens)


# ---- tokenizers: encode / encode_plus / prepare_for_model with 2.x's options ---------------------------------

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")


def ids_of(tokenizer, text):
    """2.x took a text as a string, a list of tokens, or a list of ids."""
    if isinstance(text, str):
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    if isinstance(text, (list, tuple)) and all(isinstance(item, str) for item in text):
        return tokenizer.convert_tokens_to_ids(list(text))
    if isinstance(text, (list, tuple)) and all(isinstance(item, int) for item in text):
        return list(text)
    raise BadValueError(f"encode_plus: a text must be a string, a list of tokens or a list of ids, got "
                        f"{type(text).__name__}")


# encode_plus's 2.x options at their 2.x defaults: what ALBERT's, RoBERTa's and XLNet's own encode_plus does anyway.
DEFAULT_2X_OPTIONS = {"add_special_tokens": True, "stride": 0, "truncation_strategy": "longest_first",
                      "pad_to_max_length": False, "return_tensors": None, "return_token_type_ids": True,
                      "return_attention_mask": True, "return_overflowing_tokens": False,
                      "return_special_tokens_mask": False}


def accept_default_2x_options(tokenizer, options):
    """For the tokenizers that keep their own encode_plus: 2.x's options are accepted at their defaults (a 2.x
    script passes add_special_tokens=True), and any other value is an error, never silently ignored."""
    name = type(tokenizer).__name__
    for option, value in options.items():
        if option not in DEFAULT_2X_OPTIONS:
            raise TypeError(f"{name}.encode_plus() got an unexpected keyword argument {option!r}")
        if value != DEFAULT_2X_OPTIONS[option]:
            raise Unsupported2xArgument(f"{name}.encode_plus({option}={value!r}): only BertTokenizer takes "
                                        f"transformers 2.x's options; here {option} can only be "
                                        f"{DEFAULT_2X_OPTIONS[option]!r}")


def encode_plus_2x(tokenizer, text, text_pair=None, add_special_tokens=True, max_length=None, stride=0,
                   truncation_strategy="longest_first", pad_to_max_length=False, return_tensors=None,
                   return_token_type_ids=True, return_attention_mask=True, return_overflowing_tokens=False,
                   return_special_tokens_mask=False):
    """transformers 2.x's encode_plus: tokenize, then `prepare_for_model`."""
    ids = ids_of(tokenizer, text)
    pair_ids = None if text_pair is None else ids_of(tokenizer, text_pair)
    return prepare_for_model(tokenizer, ids, pair_ids, max_length, add_special_tokens, stride, truncation_strategy,
                             pad_to_max_length, return_tensors, return_token_type_ids, return_attention_mask,
                             return_overflowing_tokens, return_special_tokens_mask)


def prepare_for_model(tokenizer, ids, pair_ids=None, max_length=None, add_special_tokens=True, stride=0,
                      truncation_strategy="longest_first", pad_to_max_length=False, return_tensors=None,
                      return_token_type_ids=True, return_attention_mask=True, return_overflowing_tokens=False,
                      return_special_tokens_mask=False):
    """Ids (and pair ids) -> the dict 2.x's encode_plus returned.

    Keys: input_ids, token_type_ids, attention_mask (each unless switched off), special_tokens_mask (1 where
    [CLS]/[SEP]/padding stand), overflowing_tokens and num_truncated_tokens (what truncation cut off, with
    `stride` tokens of context before it). pad_to_max_length pads on the right with [PAD], type 0, mask 0.
    return_tensors="pt" gives [1, L] tensors, as 2.x did.
    """
    if return_tensors not in (None, "pt"):
        raise Unsupported2xArgument(f"return_tensors={return_tensors!r}: only None (lists) or 'pt' (PyTorch) here")
    special = 2 if pair_ids is None else 3
    total = len(ids) + (len(pair_ids) if pair_ids is not None else 0) + (special if add_special_tokens else 0)
    encoded = {}
    if max_length is not None and total > max_length:
        ids, pair_ids, overflowing = truncate_sequences(ids, pair_ids, total - max_length, truncation_strategy, stride)
        if return_overflowing_tokens:
            encoded["overflowing_tokens"] = overflowing
            encoded["num_truncated_tokens"] = total - max_length
    if add_special_tokens:
        laid_out = _lay_out(tokenizer, ids, pair_ids)  # [CLS] a [SEP] (b [SEP])
        input_ids, token_type_ids = laid_out["input_ids"], laid_out["token_type_ids"]
        special_mask = [1] + [0] * len(ids) + [1] + ([] if pair_ids is None else [0] * len(pair_ids) + [1])
    else:
        input_ids = ids + (pair_ids or [])
        token_type_ids = [0] * len(ids) + [1] * len(pair_ids or [])
        special_mask = [0] * len(input_ids)
    attention_mask = [1] * len(input_ids)
    if pad_to_max_length and max_length is not None and len(input_ids) < max_length:
        if tokenizer.pad_token_id is None:
            raise BadValueError(f"pad_to_max_length=True: the vocabulary has no {tokenizer.pad_token!r} to pad with")
        padding = max_length - len(input_ids)
        input_ids = input_ids + [tokenizer.pad_token_id] * padding
        token_type_ids = token_type_ids + [0] * padding
        attention_mask = attention_mask + [0] * padding
        special_mask = special_mask + [1] * padding
    encoded["input_ids"] = input_ids
    if return_token_type_ids:
        encoded["token_type_ids"] = token_type_ids
    if return_attention_mask:
        encoded["attention_mask"] = attention_mask
    if return_special_tokens_mask:
        encoded["special_tokens_mask"] = special_mask
    if return_tensors == "pt":
        for key in ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"):
            if key in encoded:
                encoded[key] = torch.tensor([encoded[key]])  # [L] -> [1, L], a batch of one
    return encoded


def _lay_out(tokenizer, ids, pair_ids):
    return lay_out_inputs(ids, pair_ids, None, tokenizer.cls_token_id, tokenizer.sep_token_id)


def truncate_sequences(ids, pair_ids=None, num_tokens_to_remove=0, truncation_strategy="longest_first", stride=0):
    """Remove `num_tokens_to_remove` ids; return (ids, pair_ids, overflowing_tokens), as 2.x did.

    longest_first: one token at a time from the longer sequence (from the pair on a tie): the rule of
        tokenization_utils.truncate_longest_first. only_first / only_second: from that sequence alone.
        do_not_truncate: an error when anything would have to go.
    overflowing_tokens: what was cut from the end of `ids` (of `pair_ids` with only_second), preceded by
    `stride` tokens that stayed, so a sliding window can go on from there.
    """
    if truncation_strategy not in TRUNCATION_STRATEGIES:
        raise BadValueError(f"truncation_strategy {truncation_strategy!r}: choose one of "
                            f"{', '.join(TRUNCATION_STRATEGIES)}")
    if num_tokens_to_remove <= 0:
        return ids, pair_ids, []
    if truncation_strategy == "do_not_truncate":
        raise BadValueError(f"the input is {num_tokens_to_remove} tokens longer than max_length, and "
                            "truncation_strategy='do_not_truncate'; raise max_length or choose a strategy")
    if truncation_strategy == "longest_first":
        room = len(ids) + len(pair_ids or []) - num_tokens_to_remove
        kept, kept_pair = truncate_longest_first(ids, pair_ids, room)
        window = min(len(kept), stride)
        return kept, kept_pair, ids[len(kept) - window:]
    second = truncation_strategy == "only_second"
    cut = pair_ids if second else ids
    if cut is None or len(cut) <= num_tokens_to_remove:
        which = "the pair" if second else "the first text"
        raise BadValueError(f"truncation_strategy {truncation_strategy!r}: {which} has "
                            f"{0 if cut is None else len(cut)} tokens, fewer than the {num_tokens_to_remove} "
                            "to remove; use 'longest_first'")
    overflowing = cut[len(cut) - min(len(cut), stride + num_tokens_to_remove):]
    cut = cut[:len(cut) - num_tokens_to_remove]
    return (ids, cut, overflowing) if second else (cut, pair_ids, overflowing)


# Roles 2.x's add_special_tokens takes, besides additional_special_tokens.
SPECIAL_TOKEN_ATTRIBUTES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class TokenizerCompat2x:
    """The methods of transformers 2.x's PreTrainedTokenizer that BertTokenizer does not define itself.

    It works on what BertTokenizer holds: `vocab` {token: id}, `ids_to_tokens` [token], `special_tokens`
    (the tokens written in a text that stay whole), and `_special_token_split` (the regex that finds them).
    """

    def __len__(self):
        """The vocabulary's size, added tokens included (2.x's len(tokenizer))."""
        return len(self.ids_to_tokens)

    def encode(self, text, text_pair=None, add_special_tokens=True, max_length=None, stride=0,
               truncation_strategy="longest_first", pad_to_max_length=False, return_tensors=None):
        """2.x's encode: encode_plus(...)["input_ids"]."""
        return encode_plus_2x(self, text, text_pair, add_special_tokens, max_length, stride, truncation_strategy,
                              pad_to_max_length, return_tensors)["input_ids"]

    def prepare_for_model(self, ids, pair_ids=None, max_length=None, add_special_tokens=True, stride=0,
                          truncation_strategy="longest_first", pad_to_max_length=False, return_tensors=None,
                          return_token_type_ids=True, return_attention_mask=True, return_overflowing_tokens=False,
                          return_special_tokens_mask=False):
        return prepare_for_model(self, ids, pair_ids, max_length, add_special_tokens, stride, truncation_strategy,
                                 pad_to_max_length, return_tensors, return_token_type_ids, return_attention_mask,
                                 return_overflowing_tokens, return_special_tokens_mask)

    @staticmethod
    def truncate_sequences(ids, pair_ids=None, num_tokens_to_remove=0, truncation_strategy="longest_first",
                           stride=0):
        return truncate_sequences(ids, pair_ids, num_tokens_to_remove, truncation_strategy, stride)

    @property
    def additional_special_tokens(self):
        return list(getattr(self, "_additional_special_tokens", []))

    @property
    def all_special_tokens(self):
        roles = [getattr(self, role) for role in SPECIAL_TOKEN_ATTRIBUTES]
        return list(dict.fromkeys([token for token in roles if token in self.vocab] + self.additional_special_tokens))

    @property
    def all_special_ids(self):
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_tokens(self, new_tokens):
        """Append tokens the vocabulary lacks, with the next ids; return how many were new.

        An added token is kept whole wherever it is written in a text, exactly as written (2.x lower-cased it
        first for an uncased tokenizer; here write it as the text will have it). It is saved in vocab.txt, so
        a saved-and-reloaded tokenizer gives it the same id. Call model.resize_token_embeddings(len(tokenizer))
        afterwards, as in 2.x.
        """
        if isinstance(new_tokens, str):
            new_tokens = [new_tokens]
        added = [token for token in dict.fromkeys(new_tokens) if token not in self.vocab]
        for token in added:
            self.vocab[token] = len(self.ids_to_tokens)
            self.ids_to_tokens.append(token)
        self._keep_whole(new_tokens)
        return len(added)

    def add_special_tokens(self, special_tokens_dict):
        """{"cls_token": "<c>", "additional_special_tokens": ["<e1>", ...], ...}: set the roles, add the tokens the
        vocabulary lacks (add_tokens); return how many were new."""
        unknown = sorted(set(special_tokens_dict) - set(SPECIAL_TOKEN_ATTRIBUTES) - {"additional_special_tokens"})
        if unknown:
            raise BadValueError(f"add_special_tokens: {unknown} are not roles of {type(self).__name__}; roles: "
                                f"{', '.join(SPECIAL_TOKEN_ATTRIBUTES)}, additional_special_tokens")
        tokens = list(special_tokens_dict.get("additional_special_tokens", []))
        tokens += [special_tokens_dict[role] for role in SPECIAL_TOKEN_ATTRIBUTES if role in special_tokens_dict]
        count = self.add_tokens(tokens)
        for role in SPECIAL_TOKEN_ATTRIBUTES:
            if role in special_tokens_dict:
                setattr(self, role, special_tokens_dict[role])
                setattr(self, role + "_id", self.vocab[special_tokens_dict[role]])
        self._additional_special_tokens = (self.additional_special_tokens
                                           + special_tokens_dict.get("additional_special_tokens", []))
        return count

    def save_vocabulary(self, vocab_path):
        """Write vocab.txt into the folder `vocab_path` (or to that file name); return (its path,), as 2.x did.
        save_pretrained writes it too, with the tokenizer's settings."""
        folder, name = (vocab_path, VOCAB_NAME) if os.path.isdir(vocab_path) else os.path.split(vocab_path)
        return save_tokenizer_files(folder or ".", {name: "".join(token + "\n" for token in self.ids_to_tokens)})

    def _keep_whole(self, tokens):
        self.special_tokens = tuple(dict.fromkeys(tuple(self.special_tokens) + tuple(tokens)))
        # Longest first, so that "[CLS]x" is not found inside a longer added token.
        ordered = sorted(self.special_tokens, key=len, reverse=True)
        self._special_token_split = re.compile("(" + "|".join(map(re.escape, ordered)) + ")")


def save_vocabulary_2x(tokenizer, vocab_path, contents):
    """transformers 2.x's `save_vocabulary(vocab_path)` for the tokenizers whose vocabulary is a file of their own
    kind (XLNet's and ALBERT's spiece.model, RoBERTa's vocab.json and merges.txt): write `contents` ({file name:
    text or bytes}) into the folder `vocab_path`; return their paths as a tuple, as 2.x did.

    2.x wanted a folder here and, given anything else, logged an error and wrote nothing, which a script only
    finds out when it loads the checkpoint. Here that is an error naming the path.
    """
    if not os.path.isdir(vocab_path):
        raise BadValueError(f"save_vocabulary: {vocab_path} is not a folder; {type(tokenizer).__name__} writes "
                            f"{' and '.join(contents)} into an existing folder (as transformers 2.x)")
    return save_tokenizer_files(vocab_path, contents)
