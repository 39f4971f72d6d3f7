"""Which classes read a model folder: the family table, and the rule that picks a row.

Takes a model folder (its config.json's `model_type` and the files it holds) and the `--model_type` a user
gave, and hands on one `ModelFamily`: the config class, the classifier class, how to load the tokenizer, and
what `--reinit_layers N` selects. run_classifier.py goes through this table for all four; a new family joins
by adding one row to `FAMILIES`.

The rule (`choose_family`):
    config.json says model_type  -> that family; a --model_type that names another family is an error that
                                    says both. One exception, kept from the seed: Chinese RoBERTa-wwm is
                                    BERT's architecture with BERT's vocab.txt, published under the name
                                    RoBERTa. A folder with vocab.txt and no vocab.json is read as BERT whether
                                    its config says "bert" or "roberta", and --model_type roberta is accepted
                                    for it.
    config.json has no model_type -> (configs of transformers 2.x, Google's bert_config.json) the --model_type
                                    given, with the same RoBERTa-wwm exception.
"""
import logging
import os
from dataclasses import dataclass
from typing import Callable, Type

from .configuration_albert import AlbertConfig
from .configuration_bert import BertConfig, LoadingError, PretrainedConfig, config_file_of, read_config_json
from .configuration_roberta import RobertaConfig
from .configuration_xlnet import XLNetConfig
from .file_utils import BadValueError, is_remote_url
from .hub import local_model_path
from .modeling_albert import AlbertForSequenceClassification, top_group_meaning, top_group_selectors
from .modeling_bert import BertForSequenceClassification
from .modeling_roberta import RobertaForSequenceClassification, roberta_layer_selectors
from .modeling_xlnet import XLNetForSequenceClassification, xlnet_top_layer_selectors
from .modeling_utils import PreTrainedModel, top_layer_selectors
from .tokenization_albert import AlbertTokenizer
from .tokenization_bert import TOKENIZER_CONFIG_NAME, VOCAB_NAME, BertTokenizer
from .tokenization_roberta import VOCAB_JSON_NAME, RobertaTokenizer
from .tokenization_xlnet import SPIECE_NAME, XLNetTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFamily:
    name: str
    config_class: Type[PretrainedConfig]
    model_class: Type[PreTrainedModel]  # the sequence classifier
    # (path, do_lower_case or None, cache_dir or None, revision or None) -> a tokenizer with encode_plus, vocab, save_pretrained
    load_tokenizer: Callable
    # (config, N, pooler) -> selectors for --reinit_layers N [--reinit_pooler]
    reinit_layer_selectors: Callable
    # For the reader, logged when run_classifier picks the family (the README's model table says the same).
    tokenizer_note: str
    reinit_note: str
    # (config, N) -> the sentence run_classifier logs when the weights --reinit_layers N selects serve more
    # depths than the top N (ALBERT's shared layers), else None
    reinit_layers_meaning: Callable = lambda config, num_layers: None


def load_bert_tokenizer(path, do_lower_case=None, cache_dir=None, revision=None):
    return BertTokenizer.from_pretrained(path, do_lower_case=do_lower_case, cache_dir=cache_dir, revision=revision)


def load_albert_tokenizer(path, do_lower_case=None, cache_dir=None, revision=None):
    """albert_zh ships BERT's vocab.txt (and was pre-trained on BERT's tokenization); other ALBERTs a
    SentencePiece spiece.model. A Hub name becomes its snapshot folder first, holding whichever it has."""
    path = local_model_path(path, ((VOCAB_NAME,), (SPIECE_NAME,)), optional=(TOKENIZER_CONFIG_NAME,),
                            what="an ALBERT tokenizer", revision=revision, cache_dir=cache_dir)
    if os.path.isfile(os.path.join(str(path), VOCAB_NAME)) or str(path).endswith(".txt"):
        return load_bert_tokenizer(path, do_lower_case, cache_dir)
    return AlbertTokenizer.from_pretrained(path, do_lower_case=do_lower_case, cache_dir=cache_dir)


def load_roberta_tokenizer(path, do_lower_case=None, cache_dir=None, revision=None):
    return RobertaTokenizer.from_pretrained(path, do_lower_case=do_lower_case, cache_dir=cache_dir, revision=revision)


def load_xlnet_tokenizer(path, do_lower_case=None, cache_dir=None, revision=None):
    return XLNetTokenizer.from_pretrained(path, do_lower_case=do_lower_case, cache_dir=cache_dir, revision=revision)


FAMILIES = {
    "bert": ModelFamily(
        "bert", BertConfig, BertForSequenceClassification, load_bert_tokenizer, top_layer_selectors,
        tokenizer_note="WordPiece (vocab.txt or tokenizer.json)",
        reinit_note="the top N of num_hidden_layers layers (bert.encoder.layer.*); pooler: bert.pooler"),
    "albert": ModelFamily(
        "albert", AlbertConfig, AlbertForSequenceClassification, load_albert_tokenizer, top_group_selectors,
        tokenizer_note="SentencePiece (spiece.model); BertTokenizer when the folder has vocab.txt (albert_zh)",
        reinit_note="the top N of num_hidden_groups layer groups; with one group (all depths share it), N in "
                    "1..num_hidden_layers selects that group, as it selects albert_zh's one shared layer "
                    "bert.encoder.layer_shared (a config with ln_type): every depth changes",
        reinit_layers_meaning=top_group_meaning),
    "roberta": ModelFamily(
        "roberta", RobertaConfig, RobertaForSequenceClassification, load_roberta_tokenizer, roberta_layer_selectors,
        tokenizer_note="byte-level BPE (vocab.json + merges.txt, or tokenizer.json)",
        reinit_note="the top N of num_hidden_layers layers (roberta.encoder.layer.*); no pooler (an error)"),
    "xlnet": ModelFamily(
        "xlnet", XLNetConfig, XLNetForSequenceClassification, load_xlnet_tokenizer, xlnet_top_layer_selectors,
        tokenizer_note="SentencePiece (spiece.model); <sep> <cls> at the end, batches padded on the left",
        reinit_note="the top N of n_layer layers (transformer.layer.*); pooler: sequence_summary"),
}


def family_of(config):
    """The family whose config class `config` is (its model_type names the row)."""
    return FAMILIES[type(config).model_type]


def choose_family(model_type, model_name_or_path, config_source=None, cache_dir=None, revision=None):
    """The family that reads this model, by the rule in the module docstring; an error if --model_type disagrees.

    model_type: what the user gave (--model_type), lower-case. config_source: --config_name if given.
    """
    if model_type not in FAMILIES:
        raise BadValueError(f"--model_type {model_type!r} is not supported; choose one of {', '.join(FAMILIES)}")
    config_file = config_file_of(config_source or model_name_or_path, cache_dir=cache_dir, revision=revision)
    declared = read_config_json(config_file).get("model_type")
    chosen = declared or model_type
    if chosen == "roberta" and _is_bert_vocabulary_folder(model_name_or_path):
        chosen = "bert"  # Chinese RoBERTa-wwm: BERT's architecture under RoBERTa's name
    if chosen not in FAMILIES:
        raise LoadingError(f"{config_file} says model_type {declared!r}, which no family here reads "
                            f"(families: {', '.join(FAMILIES)})")
    agrees = model_type == chosen or (model_type == "roberta" and chosen == "bert"
                                      and _is_bert_vocabulary_folder(model_name_or_path))
    if not agrees:
        raise BadValueError(f"--model_type {model_type} disagrees with {config_file}, which says model_type "
                            f"{declared!r}; pass --model_type {declared} (or the folder of a {model_type} model)")
    if chosen != model_type:
        logger.info("--model_type %s: %s holds vocab.txt and %s, so it is read as BERT (Chinese RoBERTa-wwm is "
                    "BERT's architecture)", model_type, model_name_or_path,
                    f"says model_type {declared!r}" if declared else "names no model_type")
    return FAMILIES[chosen]


def _is_bert_vocabulary_folder(path):
    """A local folder with BERT's vocab.txt and no byte-level BPE vocabulary (vocab.json)."""
    path = str(path)
    if is_remote_url(path) or not os.path.isdir(path):
        return False
    return os.path.isfile(os.path.join(path, VOCAB_NAME)) and not os.path.isfile(os.path.join(path, VOCAB_JSON_NAME))
