"""Step 3 for RoBERTa: the network, from token ids to class scores.

RoBERTa (Liu et al., 2019) is BERT's network, pre-trained differently (more data, no next-sentence task,
byte-level BPE). So this file reuses modeling_bert.py's encoder as it is and says only what differs:

1. Positions are counted past the padding id. Real tokens get positions pad_token_id + 1, + 2, ... (2, 3, ...
   with <pad> = 1) and padding gets position pad_token_id, whose row is kept at zero like <pad>'s word vector.
   This comes from fairseq, which RoBERTa was trained with; a checkpoint's position table only makes sense
   read this way.
2. One segment type: token_type_ids are all 0.
3. The classification head reads the <s> vector (RoBERTa has no trained pooler: there was no next-sentence
   task) through its own dense + tanh + out_proj, all trained on the task.

Takes `input_ids`, `attention_mask` (and token_type_ids, all 0) and hands on `BertModelOutput` or, with the
head, `SequenceClassifierOutput`. Parameter names are transformers' (`roberta.encoder.layer.0.attention.self.
query.weight`, `classifier.out_proj.weight`), so that checkpoints saved by transformers load as they are.

Shape legend, used in the comments of this file:
    B batch size, L sequence length, H hidden size, C number of labels.
"""
import torch
from torch import nn

from .configuration_roberta import RobertaConfig
from .file_utils import BadValueError
from .modeling_bert import (BertEmbeddings, BertEncoder, BertModelOutput, BertPooler, SequenceClassifierOutput,
                            attention_bias_from_mask, classification_loss, default_masks)
from .compat_2x import PreTrainedModel2x
from .modeling_utils import Linear, top_layer_selectors


def position_ids_past_padding(input_ids, padding_idx):
    """[B, L] ids -> [B, L] positions: padding_idx + 1, + 2, ... for real tokens, padding_idx for padding.

    With <pad> = 1:  ids  <s> Hello world </s> <pad> <pad>
                     pos   2    3     4     5     1     1
    Counting only non-padding tokens (a running sum) also numbers left-padded rows from the first real token.
    run_classifier.py pads its batches with id 0 (<s>) and attention mask 0: those positions are then numbered
    on past the real tokens, which changes no real token's output, as no token attends to them.
    """
    is_token = input_ids.ne(padding_idx).long()  # [B, L]: 1 for a real token, 0 for padding
    return torch.cumsum(is_token, dim=1) * is_token + padding_idx  # [B, L]


class RobertaEmbeddings(BertEmbeddings):
    """BERT's embeddings, with positions counted past the padding id (see `position_ids_past_padding`)."""

    def __init__(self, config):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        # The padding position's row is zeroed at init (as <pad>'s word vector is), and gets no gradient.
        self.position_embeddings.padding_idx = config.pad_token_id

    def forward(self, input_ids, token_type_ids, position_ids=None):
        longest = self.position_embeddings.num_embeddings - self.padding_idx - 1
        if input_ids.shape[1] > longest:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds the {longest} positions RoBERTa has "
                             f"after its padding id (max_position_embeddings "
                             f"{self.position_embeddings.num_embeddings}); lower max_seq_length")
        positions = position_ids_past_padding(input_ids, self.padding_idx)  # [B, L]
        return super().forward(input_ids, token_type_ids, positions)  # [B, L] -> [B, L, H]


class RobertaModel(PreTrainedModel2x):
    """The encoder without a task head: ids -> one vector per token (and, as in roberta-base's checkpoint, a
    pooled vector, which the classifier does not use)."""

    config_class = RobertaConfig
    base_model_prefix = "roberta"
    returns_hidden_states = True  # config.output_hidden_states, as BertModel

    def __init__(self, config: RobertaConfig, initialize=True, add_pooling_layer=True):
        super().__init__(config)
        self.embeddings = RobertaEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        if initialize:  # from_pretrained passes False and fills the tensors itself
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                first_token_only=False) -> BertModelOutput:
        """first_token_only=True: the last layer computes the <s> row alone (see BertEncoder)."""
        attention_mask, token_type_ids = default_masks(input_ids, attention_mask, token_type_ids)
        all_states = [] if self.config.output_hidden_states else None  # then every row of the last layer
        first_token_only = first_token_only and all_states is None
        embedded = self.embeddings(input_ids, token_type_ids)  # [B, L] -> [B, L, H]
        attention_bias = attention_bias_from_mask(attention_mask, embedded.dtype)  # [B, L] -> [B, 1, 1, L]
        # [B, L, H] -> [B, L or 1, H]
        sequence = self.encoder(embedded, attention_bias, first_token_only, all_states)
        pooled = self.pooler(sequence) if self.pooler is not None else None
        return BertModelOutput(last_hidden_state=sequence, pooler_output=pooled,
                               hidden_states=None if all_states is None else tuple(all_states))


class RobertaClassificationHead(nn.Module):
    """<s> vector -> dropout -> dense + tanh -> dropout -> out_proj: C class scores.

    The dense + tanh is what BERT's pooler computes, but here it belongs to the head and starts untrained;
    it is named `classifier.dense`, and the rows that score the labels are `classifier.out_proj`.
    """

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.out_proj = Linear(config.hidden_size, config.num_labels)

    def forward(self, sequence):
        first_token = sequence[:, 0]  # [B, L or 1, H] -> [B, H], the <s> position
        hidden = torch.tanh(self.dense(self.dropout(first_token)))  # [B, H] -> [B, H]
        return self.out_proj(self.dropout(hidden))  # [B, H] -> [B, C]


class RobertaForSequenceClassification(PreTrainedModel2x):
    """RobertaModel (without its pooler) plus RoBERTa's classification head."""

    config_class = RobertaConfig
    base_model_prefix = "roberta"
    label_row_keys = ("classifier.out_proj.weight", "classifier.out_proj.bias")
    returns_hidden_states = True

    def __init__(self, config: RobertaConfig, initialize=True):
        super().__init__(config)
        self.num_labels = config.num_labels
        # roberta-base's checkpoint has a pooler, which this model does not use: loading lists it as unused.
        self.roberta = RobertaModel(config, initialize=False, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        if initialize:
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> SequenceClassifierOutput:
        # The head reads only the <s> vector, so the last layer need not compute the other rows.
        output = self.roberta(input_ids, attention_mask, token_type_ids, first_token_only=True)
        logits = self.classifier(output.last_hidden_state)  # [B, 1 or L, H] -> [B, C]
        return SequenceClassifierOutput(loss=classification_loss(logits, labels, self.num_labels), logits=logits,
                                        hidden_states=output.hidden_states)


def roberta_layer_selectors(config, num_layers, pooler=False):
    """What `--reinit_layers N` selects in RoBERTa: its top N layers, named as BERT's under `roberta.`.

    --reinit_pooler is refused: the classifier does not use roberta-base's pooler, and the dense + tanh it
    does use (`classifier.dense`) is part of the head, which a pre-trained checkpoint does not have anyway.
    """
    if pooler:
        raise BadValueError("--reinit_pooler: RoBERTa's classifier has no pooler (it reads <s> through its own "
                            "classifier.dense + tanh, which is new unless the checkpoint was fine-tuned); to "
                            "re-initialize a fine-tuned one, use --reinit_keys classifier.dense")
    return top_layer_selectors(config, num_layers, layer_prefix="roberta.encoder.layer")
