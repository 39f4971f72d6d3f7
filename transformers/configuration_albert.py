"""Step 1 for an ALBERT model: its configuration.

Takes an ALBERT `config.json` (written by transformers, or albert_zh's `albert_config_*.json` renamed) and hands
on an `AlbertConfig`: BERT's fields plus the three that make ALBERT small.

    embedding_size     E: the width of the token, position and segment vectors. BERT uses H for them; ALBERT
                       keeps them narrow (E = 128 against H = 768..4096) and widens them once, with one
                       [E, H] matrix, before the first layer ("factorized embeddings"). The vocabulary table
                       costs V * E numbers instead of V * H.
    num_hidden_groups  G: how many different sets of layer weights there are. The network is still
                       num_hidden_layers deep, but consecutive depths share a group's weights: with 12 layers
                       and G = 1, one layer's weights are applied 12 times.
    inner_group_num    how many layers (each with its own weights) one group holds; each use of a group runs
                       all of them in turn. Every released ALBERT has 1.

Everything else (reading, saving, labels, the checks) is BertConfig's; see configuration_bert.py.

Two ALBERTs share the name. Google's (google-research/albert, what transformers implements) and brightmart's
albert_zh, the Chinese ALBERT that Read_Bert_Code's readers fine-tune. albert_zh's config has one key Google's
lacks, `ln_type` ("postln" or "preln"), and that key is the rule: a config with `ln_type` is albert_zh
(`AlbertZhConfig`, built by modeling_albert_zh.py), one without is Google's. Reading picks the class by it
(`AlbertConfig.from_dict`), and so does `albert_config_of` for a transformers 2.x BertConfig that carries
ALBERT's keys (the seed reads every config with BertConfig).
"""
from dataclasses import dataclass
from typing import ClassVar, Mapping, Tuple

from .configuration_bert import REQUIRED_FIELDS, BertConfig, LoadingError
from .hub import SHORTCUT_NAMES


@dataclass
class AlbertConfig(BertConfig):
    model_type: ClassVar[str] = "albert"
    accepted_model_types: ClassVar[Tuple[str, ...]] = ("albert",)
    architecture: ClassVar[str] = "an ALBERT architecture"
    pretrained_config_archive_map: ClassVar[Mapping[str, str]] = SHORTCUT_NAMES["albert"]
    # embedding_size fixes the shape of every embedding table; albert_zh's configs and transformers' have it.
    # The two group counts may be absent (albert_zh leaves them out): 1 is what every release uses.
    required_fields: ClassVar[Tuple[str, ...]] = REQUIRED_FIELDS + ("embedding_size",)

    # The defaults are those of ALBERT-xxlarge, as in transformers; a config.json sets them all.
    vocab_size: int = 30000
    hidden_size: int = 4096
    num_hidden_layers: int = 12
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    embedding_size: int = 128
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    # Dropout on the pooled vector before the classifier (BERT uses hidden_dropout_prob there).
    classifier_dropout_prob: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.num_hidden_groups <= self.num_hidden_layers:
            raise ValueError(f"num_hidden_groups ({self.num_hidden_groups}) must be between 1 and "
                             f"num_hidden_layers ({self.num_hidden_layers}): each group serves one or more depths")
        if self.inner_group_num < 1:
            raise ValueError(f"inner_group_num must be at least 1, got {self.inner_group_num}")

    def group_of_depth(self, depth):
        """Which layer group runs at depth `depth` (0-based): consecutive depths share a group.

        12 layers, 4 groups -> depths 0-2 use group 0, 3-5 group 1, 6-8 group 2, 9-11 group 3. The division
        is done in floats, as in transformers, so that uneven splits (10 layers, 4 groups) give the same groups.
        """
        return int(depth / (self.num_hidden_layers / self.num_hidden_groups))

    @classmethod
    def from_dict(cls, values, **overrides):
        """As BertConfig's, except that AlbertConfig itself returns an AlbertZhConfig (a subclass) for a config
        with `ln_type`: the one key that tells albert_zh from Google's ALBERT."""
        if cls is AlbertConfig and "ln_type" in values:
            cls = AlbertZhConfig
        return super(AlbertConfig, cls).from_dict(values, **overrides)


# albert_zh's two block layouts. postln is BERT's block: LayerNorm after each residual sum. preln moves each
# LayerNorm in front of its sub-block (attention, feed-forward) and leaves the residual stream un-normalized.
LN_TYPES = ("postln", "preln")


@dataclass
class AlbertZhConfig(AlbertConfig):
    """brightmart's albert_zh: E-wide word vectors projected to H before the H-wide position and segment
    vectors are added; one set of layer weights (`layer_shared`) run at every depth; `ln_type` picks the block.

    It is an AlbertConfig for the family table (model_type "albert", --model_type albert), but it builds
    modeling_albert_zh.py's network, not modeling_albert.py's: the two differ where the embeddings are widened
    and in every parameter name. The group counts are always 1 (one shared layer); a config that says otherwise
    is not an albert_zh config.
    """

    # classifier_dropout_prob is inherited and not read: albert_zh's classifier (as the seed's) drops out the
    # pooled vector with hidden_dropout_prob, as BERT's does.
    ln_type: str = "postln"

    def __post_init__(self):
        super().__post_init__()
        if self.ln_type not in LN_TYPES:
            raise ValueError(f"ln_type {self.ln_type!r} is not albert_zh's: choose one of {', '.join(LN_TYPES)}")
        if self.num_hidden_groups != 1 or self.inner_group_num != 1:
            raise ValueError(f"num_hidden_groups {self.num_hidden_groups} and inner_group_num "
                             f"{self.inner_group_num}: albert_zh (a config with ln_type) has one shared layer, "
                             "so both must be 1; drop ln_type if this is Google's ALBERT")


def albert_config_of(config):
    """The ALBERT config that `config` stands for: itself if it is one, else (a transformers 2.x BertConfig that
    carries ALBERT's keys in `extra`, as the seed's run_classifier.py and converter make) the AlbertZhConfig
    (with `ln_type`) or AlbertConfig (without) built from the same values. A BertConfig without embedding_size
    is no ALBERT config, and is refused in one line."""
    if isinstance(config, AlbertConfig):
        return config
    values = config.to_dict()
    values.pop("model_type", None)  # "bert", the BertConfig's own; the ALBERT config writes "albert"
    if "embedding_size" not in values:
        raise LoadingError(f"an ALBERT model needs an ALBERT config, got a {type(config).__name__} without "
                           "embedding_size; read the model's config.json (albert_config.json) with AlbertConfig")
    return AlbertConfig.from_dict(values)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(AlbertConfig.from_pretrained(arg).to_json_string())
