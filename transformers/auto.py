"""transformers 2.x's Auto classes: AutoConfig, AutoTokenizer, AutoModel, AutoModelForSequenceClassification.

Takes a model folder (or its URL, or its Hub name) and hands on the config, tokenizer or model of its family, chosen by the
family table's rule (model_families.choose_family): config.json's `model_type` decides. A config.json without
one (transformers 2.x's, Google's bert_config.json) is decided as 2.x decided it, by the name of the folder:
the first of "albert", "roberta", "xlnet", "bert" that the path contains. A path that names none of them is an
error that asks for a config.json with model_type.
"""
import os

from .configuration_bert import config_file_of, read_config_json
from .file_utils import BadValueError
from .model_families import FAMILIES, choose_family

# The order matters: "roberta" and "albert" contain "bert", so they are tried first (as in 2.x).
NAME_PATTERNS = ("albert", "roberta", "xlnet", "bert")


def family_for(path, cache_dir=None, revision=None):
    """The ModelFamily that reads `path` (a folder, a URL, or a Hub name at `revision`)."""
    config_file = config_file_of(path, cache_dir=cache_dir, revision=revision)
    model_type = read_config_json(config_file).get("model_type")
    if model_type is None:
        name = os.path.basename(os.path.normpath(str(path))).lower()
        model_type = next((pattern for pattern in NAME_PATTERNS if pattern in name), None)
        if model_type is None:
            raise BadValueError(f"{config_file}: no model_type, and the name {name!r} contains none of "
                                f"{', '.join(NAME_PATTERNS)}; add \"model_type\" to config.json, or use "
                                "BertConfig/BertTokenizer/... directly")
    if model_type not in FAMILIES:
        raise BadValueError(f"{config_file}: model_type {model_type!r}; the Auto classes read "
                            f"{', '.join(FAMILIES)}")
    return choose_family(model_type, path, cache_dir=cache_dir, revision=revision)


def _base_model_class(family):
    from .modeling_albert import AlbertModel
    from .modeling_bert import BertModel
    from .modeling_roberta import RobertaModel
    from .modeling_xlnet import XLNetModel
    return {"bert": BertModel, "albert": AlbertModel, "roberta": RobertaModel, "xlnet": XLNetModel}[family.name]


class AutoConfig:
    @staticmethod
    def from_pretrained(path, cache_dir=None, revision=None, **overrides):
        return family_for(path, cache_dir, revision).config_class.from_pretrained(path, cache_dir=cache_dir,
                                                                                  revision=revision, **overrides)


class AutoTokenizer:
    @staticmethod
    def from_pretrained(path, do_lower_case=None, cache_dir=None, revision=None):
        return family_for(path, cache_dir, revision).load_tokenizer(path, do_lower_case, cache_dir, revision)


class AutoModel:
    @staticmethod
    def from_pretrained(path, *args, cache_dir=None, revision=None, **kwargs):
        model_class = _base_model_class(family_for(path, cache_dir, revision))
        return model_class.from_pretrained(path, *args, cache_dir=cache_dir, revision=revision, **kwargs)


class AutoModelForSequenceClassification:
    @staticmethod
    def from_pretrained(path, *args, cache_dir=None, revision=None, **kwargs):
        model_class = family_for(path, cache_dir, revision).model_class
        return model_class.from_pretrained(path, *args, cache_dir=cache_dir, revision=revision, **kwargs)
