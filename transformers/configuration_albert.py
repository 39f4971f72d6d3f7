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
"""
from dataclasses import dataclass
from typing import ClassVar, Mapping, Tuple

from .configuration_bert import REQUIRED_FIELDS, BertConfig
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


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(AlbertConfig.from_pretrained(arg).to_json_string())
