"""Step 1 of loading an XLNet: its configuration.

Takes an XLNet `config.json` (as transformers 2.x to 5.x save it) and hands on an `XLNetConfig`: the named fields
that fix every shape in `modeling_xlnet.py`. Reading, label names and writing work as for BERT (they are
`PretrainedConfig`'s, in configuration_bert.py); only the fields differ.

XLNet's config uses Transformer-XL's names, not BERT's:
    d_model = hidden size H,  n_layer = layers,  n_head = heads N,  d_head = head size D,  d_inner = feed-forward I.
`hidden_size`, `num_hidden_layers` and `num_attention_heads` answer with them, so code written for BERT's config
(the re-init selectors, the loading report) reads an XLNetConfig too.

Only what fine-tuning a classifier uses is supported. XLNet's pre-training machinery (the permutation mask, the
query stream, the memory of earlier segments) is not built, so the settings that only matter there (`mem_len`,
`reuse_len`, `same_length`, `use_mems_*`) are kept in `extra` and written back unchanged, as are SQuAD's beam
widths `start_n_top` and `end_n_top` (read from there by modeling_xlnet.XLNetForQuestionAnswering); the two
that would change the classifier's output if set otherwise (`attn_type`, `bi_data`) are checked.

Run `python -m transformers.configuration_xlnet PATH` to print a config as we read it.
"""
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Mapping, Optional, Tuple

from .configuration_bert import PretrainedConfig
from .hub import SHORTCUT_NAMES

# The fields a config.json must hold: each fixes the shape of some weights (or, for ff_activation, what every
# feed-forward block computes). transformers writes all of them.
REQUIRED_FIELDS = ("vocab_size", "d_model", "n_layer", "n_head", "d_inner", "ff_activation")


@dataclass
class XLNetConfig(PretrainedConfig):
    model_type: ClassVar[str] = "xlnet"
    accepted_model_types: ClassVar[Tuple[str, ...]] = ("xlnet",)
    architecture: ClassVar[str] = "an XLNet architecture"
    pretrained_config_archive_map: ClassVar[Mapping[str, str]] = SHORTCUT_NAMES["xlnet"]
    required_fields: ClassVar[Tuple[str, ...]] = REQUIRED_FIELDS
    # CMU's own xlnet_config.json (d_model, n_layer, n_head, d_head, d_inner, ff_activation, untie_r) calls the
    # vocabulary size n_token. Its untie_r (per-layer attention biases, true in the released models) only changes
    # how the TF checkpoint stores them (tf_checkpoint.xlnet_state_dict); here every layer has its own; kept in extra.
    json_key_aliases: ClassVar[Mapping[str, str]] = MappingProxyType({"n_token": "vocab_size"})

    vocab_size: int = 32000
    d_model: int = 1024
    n_layer: int = 24
    n_head: int = 16
    d_head: Optional[int] = None  # None: d_model // n_head, the only value transformers accepts
    d_inner: int = 4096
    ff_activation: str = "gelu"
    # "bi": every token attends to every token, as in fine-tuning. "uni" (left to right) is not built.
    attn_type: str = "bi"
    # Pre-training ran half of each batch backwards (bi_data); fine-tuning never does.
    bi_data: bool = False
    # Relative distances beyond clamp_len share one encoding; -1 (the released models' value): no clamping.
    clamp_len: int = -1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    # One dropout probability for everything: embeddings, attention probabilities, every block's output.
    dropout: float = 0.1
    # The sequence summary: which token's vector stands for the sequence, and what is done with it.
    summary_type: str = "last"
    summary_use_proj: bool = True
    summary_proj_to_labels: bool = False
    summary_activation: Optional[str] = "tanh"
    summary_first_dropout: float = 0.0
    summary_last_dropout: float = 0.1
    pad_token_id: int = 5

    def __post_init__(self):
        if self.d_model % self.n_head != 0:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head}): each head "
                             "gets d_model / n_head dimensions")
        if self.d_head is None:
            self.d_head = self.d_model // self.n_head
        if self.d_head != self.d_model // self.n_head:
            raise ValueError(f"d_head ({self.d_head}) must be d_model // n_head ({self.d_model // self.n_head})")
        if self.attn_type != "bi":
            raise ValueError(f"attn_type {self.attn_type!r} is not supported: only 'bi' (every token sees every "
                             "token, as in fine-tuning) is built")
        if self.bi_data:
            raise ValueError("bi_data=true is a pre-training setting (half the batch read backwards) and is not "
                             "built; set it to false for fine-tuning")
        if self.summary_type != "last":
            raise ValueError(f"summary_type {self.summary_type!r} is not supported: only 'last' (XLNet's <cls> is "
                             "the last token) is built")
        super().__post_init__()

    # BERT's names for the same numbers, read-only: code that sizes or selects layers reads these.
    @property
    def hidden_size(self):
        return self.d_model

    @property
    def num_hidden_layers(self):
        return self.n_layer

    @property
    def num_attention_heads(self):
        return self.n_head


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(XLNetConfig.from_pretrained(arg).to_json_string())
