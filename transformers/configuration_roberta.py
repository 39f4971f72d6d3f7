"""Step 1 for a RoBERTa model: its configuration.

Takes a RoBERTa `config.json` (model_type "roberta", as transformers writes it) and hands on a `RobertaConfig`:
BERT's fields, with RoBERTa's values where they differ. The network is BERT's; what differs is around it:

    pad_token_id 1             <pad> is id 1 (<s> is 0, </s> 2), and positions are counted past it: the first
                               real token has position pad_token_id + 1 = 2 (see modeling_roberta.py). That is
                               why max_position_embeddings is 514 for 512 tokens.
    type_vocab_size 1          one segment type: a pair is told apart by its separators alone.
    layer_norm_eps 1e-5        fairseq's LayerNorm default, which RoBERTa was trained with.
    classifier_dropout         dropout of the classification head (None: hidden_dropout_prob).

Chinese RoBERTa-wwm is not this: it is BERT's architecture with BERT's vocab.txt, read by BertConfig.
"""
from dataclasses import dataclass
from typing import ClassVar, Mapping, Optional, Tuple

from .configuration_bert import BertConfig
from .hub import SHORTCUT_NAMES


@dataclass
class RobertaConfig(BertConfig):
    model_type: ClassVar[str] = "roberta"
    accepted_model_types: ClassVar[Tuple[str, ...]] = ("roberta",)
    architecture: ClassVar[str] = "a RoBERTa architecture"
    pretrained_config_archive_map: ClassVar[Mapping[str, str]] = SHORTCUT_NAMES["roberta"]

    # The defaults are those of roberta-base, as in transformers; a config.json sets them all.
    vocab_size: int = 50265
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    classifier_dropout: Optional[float] = None

    @property
    def max_sequence_length(self):
        """Positions start past the padding id (pad_token_id + 1), so two rows of the table are never used."""
        return self.max_position_embeddings - self.pad_token_id - 1


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(RobertaConfig.from_pretrained(arg).to_json_string())
