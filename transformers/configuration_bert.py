"""Reading path, stop 3 (README): the configuration.

Takes a `config.json` (written by any Hugging Face transformers version from 2.x to 5.x, or by us) and
hands on a `BertConfig`: a flat set of named fields that fixes every shape in `modeling_bert.py`.

Reading `config.json` is forgiving about keys and strict about syntax:
- keys we do not use (`architectures`, `transformers_version`, `model_type`, `use_cache`, ...) are kept
  in `config.extra`, written back out by `to_json_file`, and never fatal;
- a file that is not JSON (or was cut off mid-write) is an error that names the file and the line;
- a value of the wrong type is an error naming the file and the key, except that an integer or a number
  written as a string (`"num_labels": "3"`, as some transformers 2.x configs were saved) is read as one;
- a file that leaves out a field fixing the network's shape (`REQUIRED_FIELDS`) is an error naming the
  file and the fields: filling it from a default (12 layers on a 6-layer checkpoint) would load part of the
  weights and leave the rest random.

Label names travel with the config: `id2label` says which class each row of the classifier head scores
(`{0: "positive", 1: "negative", 2: "neutral"}`); `label2id` is written beside it for transformers.

Run `python -m transformers.configuration_bert PATH` to print a config as we read it.
"""
import functools
import json
import logging
import math
import os
import re
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import ClassVar, Dict, List, Mapping, Optional, Tuple

from .file_utils import XLNET_TF_CONFIG_NAME
from .file_utils import (ALBERT_TF_CONFIG_NAME, CONFIG_NAME, TF_CONFIG_NAME, BadValueError, cached_path,
                         is_remote_url, join_path_or_url, url_file_name, write_atomically)
from .hub import CONFIG_LAYOUTS, SHORTCUT_NAMES, local_model_path

logger = logging.getLogger(__name__)

# Old configs name a field differently; we read the old name and write the new one.
RENAMED_KEYS = {"num_classes": "num_labels"}

# The fields a config.json must hold: each fixes the shape of some weights (or, for hidden_act, what every
# layer computes). Google's bert_config.json, transformers 2.x to 5.x and our save_pretrained all write them.
REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                   "hidden_act", "max_position_embeddings", "type_vocab_size")


class LoadingError(BadValueError):
    """A checkpoint or its config could not be used: the message names the file and the key."""


@dataclass
class PretrainedConfig:
    """What every model family's config shares: the classification head's labels, reading config.json and
    writing it back. A family's config (BertConfig below, XLNetConfig in configuration_xlnet.py) adds the
    fields that fix its network's shapes and names them in `required_fields`."""

    # The model_type written into config.json, and those a config.json may say for this family to read it
    # (a config.json that says another is refused, naming its model_type: see from_json_file).
    model_type: ClassVar[str] = "bert"
    accepted_model_types: ClassVar[Tuple[str, ...]] = ("bert",)
    architecture: ClassVar[str] = "a BERT architecture"
    required_fields: ClassVar[Tuple[str, ...]] = ()
    # Other names a family's original config file uses for a field: {their name: ours}, applied on reading
    # (CMU's xlnet_config.json says n_token for vocab_size). Written back under our names.
    json_key_aliases: ClassVar[Mapping[str, str]] = MappingProxyType({})

    # The classification head's width. 1 means regression (STS-B): the head predicts one real number.
    num_labels: int = 2
    finetuning_task: Optional[str] = None
    # Row i of the classifier head scores class id2label[i]. None: no names known (rows are just 0..C-1).
    id2label: Optional[Dict[int, str]] = None
    # transformers 2.x's switches for what a model returns besides its main output: every layer's hidden
    # states (BERT's models; see compat_2x.check_output_switches) and attention probabilities (refused).
    output_hidden_states: bool = False
    output_attentions: bool = False
    # Every key of config.json that is not a field above, kept as read so that saving does not lose it.
    extra: dict = field(default_factory=dict)
    # transformers 2.x: shortcut name -> where the model is. Here each family's shortcut names, with the Hub
    # repo each moved to (hub.SHORTCUT_NAMES); from_pretrained("bert-base-chinese") works as any Hub name does.
    # 2.x scripts read its keys for their --help text.
    pretrained_config_archive_map: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @property
    def max_sequence_length(self):
        """The longest input the model can take; None when nothing fixes one (XLNet's relative positions)."""
        return None

    def __post_init__(self):
        if self.num_labels < 1:
            raise ValueError(f"num_labels must be at least 1, got {self.num_labels}")
        if self.id2label is not None and sorted(self.id2label) != list(range(self.num_labels)):
            raise ValueError(f"id2label must name the rows 0..{self.num_labels - 1} (num_labels={self.num_labels}), "
                             f"got ids {sorted(self.id2label)}")

    # ---- labels ----------------------------------------------------------------------------------------

    @property
    def label_names(self) -> Optional[List[str]]:
        """The class names in row order, or None when the config names none.

        transformers writes `LABEL_0, LABEL_1, ...` into every config that was given no names; those are
        placeholders, not names, so they count as none.
        """
        if self.id2label is None:
            return None
        names = [self.id2label[index] for index in range(self.num_labels)]
        return None if names == [f"LABEL_{index}" for index in range(self.num_labels)] else names

    def with_labels(self, labels):
        """A copy whose head has one row per name of `labels`, in that order."""
        return replace(self, num_labels=len(labels), id2label=dict(enumerate(labels)), extra=dict(self.extra))

    # ---- reading ---------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values, **overrides):
        """Build a config from a dict as found in config.json, then apply named `overrides`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        types = field_types(cls)
        kwargs, extra = {}, dict(values.get("extra", {}))
        for key, value in values.items():
            key = RENAMED_KEYS.get(key, key)
            if key in known:
                kwargs[key] = typed_value(key, value, types[key])
            elif key != "extra":
                extra[key] = value
        if kwargs.get("id2label") is not None:
            kwargs["id2label"] = _read_id2label(kwargs["id2label"], extra.pop("label2id", None))
            # HF writes label names instead of a count; the count is what shapes the classifier.
            kwargs.setdefault("num_labels", len(kwargs["id2label"]))
        extra.pop("label2id", None)  # written again from id2label
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"{cls.__name__} has no field {key!r}; fields are: {', '.join(sorted(known))}")
            kwargs[key] = value
        if "num_labels" in overrides and "id2label" not in overrides:
            # A new head size makes the checkpoint's label names meaningless.
            kwargs.pop("id2label", None)
        return cls(extra=extra, **kwargs)

    @classmethod
    def from_json_file(cls, path, **overrides):
        values = read_config_json(path)
        for theirs, ours in cls.json_key_aliases.items():
            if theirs in values and ours not in values:
                values[ours] = values.pop(theirs)
        model_type = values.get("model_type")
        if model_type is not None and model_type not in cls.accepted_model_types:
            raise LoadingError(f"{path}: model_type {model_type!r} is not {cls.architecture} "
                               f"(expected one of {sorted(cls.accepted_model_types)})")
        missing = [name for name in cls.required_fields if name not in values]
        if missing:
            raise LoadingError(f"{path}: config.json lacks {', '.join(missing)}; these fix the shapes of the "
                               "weights, and a default in their place would build a model the checkpoint only "
                               "partly fills. Copy them from the checkpoint's original config.json")
        try:
            return cls.from_dict(values, **overrides)
        except ValueError as error:
            raise BadValueError(f"{path}: {error}") from None

    @classmethod
    def from_pretrained(cls, path_or_url, cache_dir=None, force_download=False, local_files_only=False,
                        revision=None, **overrides):
        """`path_or_url` is a model directory, a config.json file, the URL of either, or a Hub name
        ("bert-base-chinese", "hfl/chinese-roberta-wwm-ext"; see hub.py) at `revision` (branch, tag or commit).

        A directory of Google's original release has bert_config.json instead of config.json; its keys are the
        same as ours (the extra pooler_* and directionality keys are kept in `extra`).
        cache_dir / force_download / local_files_only: how a URL is fetched (see `file_utils.cached_path`).
        """
        path = config_file_of(path_or_url, cache_dir=cache_dir, force_download=force_download,
                              local_files_only=local_files_only, revision=revision)
        return cls.from_json_file(path, **overrides)

    # ---- writing ---------------------------------------------------------------------------------------

    def to_dict(self):
        values = asdict(self)
        extra = values.pop("extra")
        # Our own fields win over stale copies in `extra`; HF reads the result like any of its configs.
        out = {**extra, **values}
        out.setdefault("model_type", self.model_type)
        if self.id2label is None:
            del out["id2label"]
        else:
            # JSON object keys are strings: {"0": "positive", ...}, as transformers writes them.
            out["id2label"] = {str(index): name for index, name in sorted(self.id2label.items())}
            out["label2id"] = {name: index for index, name in sorted(self.id2label.items())}
        return out

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_json_file(self, path):
        text = self.to_json_string()

        def write(temp):
            with open(temp, "w", encoding="utf-8") as writer:
                writer.write(text)
        write_atomically(path, write)

    def save_pretrained(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.to_json_file(os.path.join(directory, CONFIG_NAME))


@dataclass
class BertConfig(PretrainedConfig):
    # Chinese RoBERTa-wwm checkpoints have BERT's architecture and parameter names. ALBERT's configs are read
    # too, as transformers 2.x read every config with BertConfig (the seed's MODEL_CLASSES pairs BertConfig with
    # AlbertForSequenceClassification): ALBERT's own keys stay in `extra`, and the ALBERT models turn such a
    # config into theirs (configuration_albert.albert_config_of).
    accepted_model_types: ClassVar[Tuple[str, ...]] = ("bert", "roberta", "albert")
    required_fields: ClassVar[Tuple[str, ...]] = REQUIRED_FIELDS
    pretrained_config_archive_map: ClassVar[Mapping[str, str]] = SHORTCUT_NAMES["bert"]

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @property
    def max_sequence_length(self):
        """The longest input the position table can take (--max_seq_length is checked against it)."""
        return self.max_position_embeddings

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}): each head gets hidden_size / num_attention_heads dimensions")
        if self.extra.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"position_embedding_type {self.extra['position_embedding_type']!r} is not supported; "
                             "only learned absolute positions ('absolute') are")
        super().__post_init__()


def config_file_of(path_or_url, cache_dir=None, force_download=False, local_files_only=False, revision=None):
    """The local path of the config file that `path_or_url` (a model directory, a config file, the URL of
    either, or a Hub name) stands for, fetched first when remote."""
    fetch_options = dict(cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only)
    path_or_url = local_model_path(path_or_url, CONFIG_LAYOUTS, what="a config", revision=revision, **fetch_options)
    if os.path.isdir(path_or_url):
        # Google's releases name it bert_config.json (BERT) or albert_config.json (ALBERT).
        names = (CONFIG_NAME, TF_CONFIG_NAME, ALBERT_TF_CONFIG_NAME)
        names += (XLNET_TF_CONFIG_NAME,)  # CMU's XLNet release
        path = next((os.path.join(path_or_url, name) for name in names
                     if os.path.isfile(os.path.join(path_or_url, name))), None)
        if path is None:
            raise FileNotFoundError(f"{path_or_url}: directory has no {CONFIG_NAME} (nor {TF_CONFIG_NAME}, "
                                    f"{ALBERT_TF_CONFIG_NAME}, {XLNET_TF_CONFIG_NAME})")
        return path
    if is_remote_url(path_or_url) and not url_file_name(path_or_url).endswith(".json"):
        return cached_path(join_path_or_url(path_or_url, CONFIG_NAME), **fetch_options)
    return cached_path(path_or_url, **fetch_options)


def read_config_json(path):
    """config.json as a dict, or a one-line error naming the file (and the line, for broken JSON)."""
    try:
        with open(path, encoding="utf-8") as reader:
            text = reader.read()
    except UnicodeDecodeError as error:
        raise BadValueError(f"{path}: config file is not UTF-8 text ({error})") from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadValueError(
            f"{path}: not a valid JSON config (line {error.lineno}, column {error.colno}: {error.msg}); "
            f"the file may be truncated or not a config.json at all") from None
    if not isinstance(values, dict):
        raise BadValueError(f"{path}: a config.json must hold a JSON object, found {type(values).__name__}")
    return values


# "3", " 3", "-1": an integer written as a JSON string. "3.0" and "3e2" are not: a count has no fraction.
INTEGER_STRING = re.compile(r"\s*[+-]?\d+\s*")


@functools.lru_cache(maxsize=None)
def field_types(config_class):
    """{field: its type} of a config class, worked out once per class. typing.get_type_hints evaluates every
    annotation (`Optional[Dict[int, str]]`, ...) again on each call, and from_dict runs on every load."""
    return MappingProxyType(typing.get_type_hints(config_class))


def typed_value(key, value, kind):
    """A config.json value for a field declared `kind`, or a ValueError naming `key`.

    Integer and float fields take their type or a string that spells one ("3" -> 3, "1e-12" -> 1e-12), so
    that `"num_labels": "3"` builds three rows instead of failing later at `"3" < 1`. Other fields pass as
    read. JSON's true and false are not numbers here, though Python counts bool as int.
    """
    if typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind):
        if value is None:
            return None
        [kind] = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and INTEGER_STRING.fullmatch(value):
            return int(value)
        raise ValueError(f"{key!r} must be an integer, found {value!r}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
        raise ValueError(f"{key!r} must be a finite number, found {value!r}")
    return value


def _read_id2label(id2label, label2id):
    """{"0": "positive", ...} as read from JSON -> {0: "positive", ...}; label2id, when given, must agree."""
    if not isinstance(id2label, dict):
        raise ValueError(f"id2label must be an object {{\"0\": name, ...}}, got {id2label!r}")
    try:
        by_id = {int(index): str(name) for index, name in id2label.items()}
    except ValueError:
        raise ValueError(f"id2label keys must be row numbers, got {sorted(id2label)}") from None
    if label2id is not None and label2id != {name: index for index, name in by_id.items()}:
        # Common in the wild: someone set id2label by hand and left label2id at its LABEL_0.. default.
        # transformers' pipelines name predictions by id2label, so that is what a row means.
        logger.warning("config id2label %s and label2id %s disagree; using id2label", by_id, label2id)
    return by_id


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(BertConfig.from_pretrained(arg).to_json_string())
