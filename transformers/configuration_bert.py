"""Step 1 of loading a model: the configuration.

Takes a `config.json` (written by any Hugging Face transformers version from 2.x to 5.x, or by us) and
hands on a `BertConfig`: a flat set of named fields that fixes every shape in `modeling_bert.py`.

Reading `config.json` is forgiving about keys and strict about syntax:
- keys we do not use (`architectures`, `transformers_version`, `model_type`, `use_cache`, ...) are kept
  in `config.extra`, written back out by `to_json_file`, and never fatal;
- a file that is not JSON (or was cut off mid-write) is an error that names the file and the line.

Run `python -m transformers.configuration_bert PATH` to print a config as we read it.
"""
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from .file_utils import CONFIG_NAME, TF_CONFIG_NAME, cached_path, is_remote_url, join_path_or_url

# Old configs name a field differently; we read the old name and write the new one.
RENAMED_KEYS = {"num_classes": "num_labels"}


@dataclass
class BertConfig:
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
    # The classification head's width. 1 means regression (STS-B): the head predicts one real number.
    num_labels: int = 2
    finetuning_task: Optional[str] = None
    # Every key of config.json that is not a field above, kept as read so that saving does not lose it.
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}): each head gets hidden_size / num_attention_heads dimensions")
        if self.num_labels < 1:
            raise ValueError(f"num_labels must be at least 1, got {self.num_labels}")

    # ---- reading ---------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values, **overrides):
        """Build a config from a dict as found in config.json, then apply named `overrides`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs, extra = {}, dict(values.get("extra", {}))
        for key, value in values.items():
            key = RENAMED_KEYS.get(key, key)
            if key in known:
                kwargs[key] = value
            elif key != "extra":
                extra[key] = value
        # HF writes label names instead of a count; the count is what shapes the classifier.
        if "num_labels" not in kwargs and isinstance(extra.get("id2label"), dict):
            kwargs["num_labels"] = len(extra["id2label"])
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"BertConfig has no field {key!r}; fields are: {', '.join(sorted(known))}")
            kwargs[key] = value
        if "num_labels" in overrides:
            # A new head size makes the checkpoint's label names meaningless.
            extra.pop("id2label", None)
            extra.pop("label2id", None)
        return cls(extra=extra, **kwargs)

    @classmethod
    def from_json_file(cls, path, **overrides):
        try:
            with open(path, encoding="utf-8") as reader:
                text = reader.read()
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: config file is not UTF-8 text ({error})") from None
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}: not a valid JSON config (line {error.lineno}, column {error.colno}: {error.msg}); "
                f"the file may be truncated or not a config.json at all") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config.json must hold a JSON object, found {type(values).__name__}")
        return cls.from_dict(values, **overrides)

    @classmethod
    def from_pretrained(cls, path_or_url, cache_dir=None, **overrides):
        """`path_or_url` is a model directory, a config.json file, or the URL of either.

        A directory of Google's original release has bert_config.json instead of config.json; its keys are the
        same as ours (the extra pooler_* and directionality keys are kept in `extra`).
        """
        if os.path.isdir(path_or_url):
            path = os.path.join(path_or_url, CONFIG_NAME)
            if not os.path.isfile(path) and os.path.isfile(os.path.join(path_or_url, TF_CONFIG_NAME)):
                path = os.path.join(path_or_url, TF_CONFIG_NAME)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path_or_url}: directory has no {CONFIG_NAME} (nor {TF_CONFIG_NAME})")
        elif is_remote_url(path_or_url) and not path_or_url.endswith(".json"):
            path = cached_path(join_path_or_url(path_or_url, CONFIG_NAME), cache_dir=cache_dir)
        else:
            path = cached_path(path_or_url, cache_dir=cache_dir)
        return cls.from_json_file(path, **overrides)

    # ---- writing ---------------------------------------------------------------------------------------

    def to_dict(self):
        values = asdict(self)
        extra = values.pop("extra")
        # Our own fields win over stale copies in `extra`; HF reads the result like any of its configs.
        out = {**extra, **values}
        out.setdefault("model_type", "bert")
        return out

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_json_file(self, path):
        with open(path, "w", encoding="utf-8") as writer:
            writer.write(self.to_json_string())

    def save_pretrained(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.to_json_file(os.path.join(directory, CONFIG_NAME))


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(BertConfig.from_pretrained(arg).to_json_string())
