"""Step 3 for ALBERT: the network, from token ids to a sentence vector and class scores.

ALBERT ("A Lite BERT", Lan et al., ICLR 2020) is BERT with two changes that cut the number of weights, not
the amount of computing:

1. Factorized embeddings. Tokens, positions and segments get narrow vectors of size E (embedding_size), and one
   matrix `embedding_hidden_mapping_in` [E, H] widens them to H before the first layer.
2. Weights shared across depth. The network runs num_hidden_layers layers, but there are only
   num_hidden_groups sets of layer weights (usually one): depth i runs group `config.group_of_depth(i)`.

Takes what a tokenizer made (`input_ids`, `attention_mask`, `token_type_ids`) and hands on `BertModelOutput` or,
with the head, `SequenceClassifierOutput`: the same outputs as modeling_bert.py, which this file reuses for
everything ALBERT does the same way (the embedding sum, the attention arithmetic, the mask, the outputs).

Pieces in the order data flows through them:
    embeddings (E) -> embedding_hidden_mapping_in (E -> H) -> attention -> feed-forward -> layer
    -> layer group -> transformer (depth loop) -> pooler -> AlbertModel -> AlbertForSequenceClassification

Parameter names are transformers' (`albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight`),
so that checkpoints saved by transformers load as they are.

Shape legend, used in the comments of this file:
    B batch size, L sequence length, E embedding size, H hidden size, N attention heads, D head size (H = N * D),
    I intermediate size, C number of labels, Q rows that ask queries (L; 1 in the classifier's last layer).

brightmart's albert_zh (Read_Bert_Code's ALBERT) is a different network, in modeling_albert_zh.py. The classes
here build it when their config says so (a config with `ln_type`; see configuration_albert.py): as in
transformers 2.x, `AlbertForSequenceClassification.from_pretrained(albert_zh_folder, config=BertConfig(...))`
must work, so `AlbertModel`, `AlbertForSequenceClassification` and `AlbertForPreTraining` hand such a config on
to their albert_zh counterparts (`_AlbertVariant.__new__`), and turn a 2.x BertConfig carrying ALBERT's keys
into an AlbertConfig (`albert_config_of`).

Run `python -m transformers.modeling_albert` to build a small random ALBERT and print the shape after each step.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .configuration_albert import AlbertConfig, AlbertZhConfig, albert_config_of
# transformers 2.x scripts import BertConfig from here (`from transformers.modeling_albert import BertConfig`).
from .configuration_bert import BertConfig  # noqa: F401
from .file_utils import BadValueError
from .modeling_albert_zh import (AlbertZhForPreTraining, AlbertZhForSequenceClassification, AlbertZhModel,
                                 albert_zh_layer_selectors, albert_zh_layers_meaning)
from .modeling_bert import (BertEmbeddings, BertModelOutput, BertSelfAttention, PreTrainingOutput,
                            SequenceClassifierOutput, attention_bias_from_mask, classification_loss, get_activation,
                            default_masks, load_converted_checkpoint, masked_lm_loss)
from .compat_2x import PreTrainedModel2x
from .modeling_utils import Linear


class AlbertEmbeddings(BertEmbeddings):
    """BERT's embeddings (token + position + segment, LayerNorm, dropout), each vector E wide instead of H.

    The vocabulary table is the big one: for a 30,000-token vocabulary and H = 768, BERT's has 23M numbers,
    ALBERT's (E = 128) 3.8M, plus 0.1M for the [E, H] matrix that widens them.
    """

    def __init__(self, config):
        super().__init__(config, width=config.embedding_size)


class AlbertAttention(BertSelfAttention):
    """BERT's self-attention (query, key, value, heads) with its output projection and LayerNorm in the same
    module: ALBERT's checkpoints name them `attention.dense` and `attention.LayerNorm`, where BERT's say
    `attention.output.dense` and `attention.output.LayerNorm`."""

    def __init__(self, config):
        super().__init__(config)
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, queries_from, hidden_states, attention_bias):
        context = super().forward(queries_from, hidden_states, attention_bias)  # [B, Q, H] heads side by side
        # [B, Q, H] -> [B, Q, H]; the residual is the query rows' own input, as in BERT.
        return self.LayerNorm(queries_from + self.dropout(self.dense(context)))


class AlbertLayer(nn.Module):
    """One Transformer block: attention, then the feed-forward block `ffn` (H -> I) and `ffn_output` (I -> H).

    The feed-forward output has no dropout before its residual + LayerNorm: neither the original ALBERT code
    nor transformers applies one there (released ALBERTs train with dropout 0 anyway).
    """

    def __init__(self, config):
        super().__init__()
        self.attention = AlbertAttention(config)
        self.ffn = Linear(config.hidden_size, config.intermediate_size)
        self.activation = get_activation(config.hidden_act)
        self.ffn_output = Linear(config.intermediate_size, config.hidden_size)
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states, attention_bias, first_token_only=False):
        # first_token_only: compute the [CLS] row alone ([B, L, H] -> [B, 1, H]), as BertLayer does.
        queries_from = hidden_states[:, :1] if first_token_only else hidden_states
        attended = self.attention(queries_from, hidden_states, attention_bias)  # [B, Q, H]
        widened = self.activation(self.ffn(attended))  # [B, Q, H] -> [B, Q, I]
        return self.full_layer_layer_norm(self.ffn_output(widened) + attended)  # [B, Q, I] -> [B, Q, H]


class AlbertLayerGroup(nn.Module):
    """inner_group_num layers, each with its own weights, run one after the other whenever the group is used."""

    def __init__(self, config):
        super().__init__()
        self.albert_layers = nn.ModuleList(AlbertLayer(config) for _ in range(config.inner_group_num))

    def forward(self, hidden_states, attention_bias, first_token_only=False):
        last = len(self.albert_layers) - 1
        for index, layer in enumerate(self.albert_layers):
            hidden_states = layer(hidden_states, attention_bias, first_token_only and index == last)
        return hidden_states


class AlbertTransformer(nn.Module):
    """Widens the embeddings to H, then runs num_hidden_layers depths, each with its group's shared weights.

    The depth loop is what sharing means: with one group, `albert_layer_groups.0` is called num_hidden_layers
    times, and its gradient is the sum of what every depth asks of it. That is also why re-initializing
    "the top N layers" of such a model re-initializes every depth (see `top_group_selectors`).
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList(AlbertLayerGroup(config) for _ in range(config.num_hidden_groups))

    def forward(self, embedded, attention_bias, first_token_only=False):
        hidden_states = self.embedding_hidden_mapping_in(embedded)  # [B, L, E] -> [B, L, H]
        last = self.config.num_hidden_layers - 1
        for depth in range(self.config.num_hidden_layers):
            group = self.albert_layer_groups[self.config.group_of_depth(depth)]
            # [B, L, H] -> [B, L, H]; the last depth with first_token_only: [B, L, H] -> [B, 1, H]
            hidden_states = group(hidden_states, attention_bias, first_token_only and depth == last)
        return hidden_states


class _AlbertVariant(PreTrainedModel2x):
    """What the ALBERT models share: their config class, and handing an albert_zh config to `albert_zh_class`.

    `AlbertForSequenceClassification(config)` with an albert_zh config returns an
    AlbertZhForSequenceClassification, built there; Python then skips this class's __init__, as the object is
    not an instance of it. from_pretrained builds its model with `cls(config, ...)`, so it takes the same turn.
    """

    config_class = AlbertConfig
    base_model_prefix = "albert"
    albert_zh_class = None  # the albert_zh model of the same role (modeling_albert_zh.py)

    def __new__(cls, config=None, *args, **kwargs):
        # config is None when copy or pickle re-creates an object: there is nothing to choose then.
        if config is not None and isinstance(albert_config_of(config), AlbertZhConfig):
            return cls.albert_zh_class(albert_config_of(config), *args, **kwargs)
        return super().__new__(cls)


class AlbertModel(_AlbertVariant):
    """The encoder without a task head: ids -> one vector per token and a pooled vector per sentence."""

    albert_zh_class = AlbertZhModel

    def __init__(self, config: AlbertConfig, initialize=True):
        config = albert_config_of(config)  # a transformers 2.x BertConfig with ALBERT's keys -> AlbertConfig
        super().__init__(config)
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        # The pooler is a bare Linear here (`albert.pooler.weight`), where BERT's is `bert.pooler.dense.weight`;
        # it does the same: dense + tanh on the [CLS] vector, trained by pre-training's sentence-order task.
        self.pooler = Linear(config.hidden_size, config.hidden_size)
        if initialize:  # from_pretrained passes False and fills the tensors itself
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                first_token_only=False) -> BertModelOutput:
        """first_token_only=True: the last depth computes the [CLS] row alone (see BertEncoder)."""
        attention_mask, token_type_ids = default_masks(input_ids, attention_mask, token_type_ids)
        embedded = self.embeddings(input_ids, token_type_ids)  # [B, L] -> [B, L, E]
        attention_bias = attention_bias_from_mask(attention_mask, embedded.dtype)  # [B, L] -> [B, 1, 1, L]
        sequence = self.encoder(embedded, attention_bias, first_token_only)  # [B, L, E] -> [B, L or 1, H]
        pooled = torch.tanh(self.pooler(sequence[:, 0]))  # [B, L or 1, H] -> [B, H], the [CLS] position
        return BertModelOutput(last_hidden_state=sequence, pooler_output=pooled)


class AlbertForSequenceClassification(_AlbertVariant):
    """AlbertModel plus a linear head on the pooled vector: C class scores, or one number when C == 1."""

    albert_zh_class = AlbertZhForSequenceClassification

    def __init__(self, config: AlbertConfig, initialize=True):
        config = albert_config_of(config)
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config, initialize=False)  # initialized below, together with the head
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        if initialize:
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> SequenceClassifierOutput:
        pooled = self.albert(input_ids, attention_mask, token_type_ids, first_token_only=True).pooler_output
        logits = self.classifier(self.dropout(pooled))  # [B, H] -> [B, C]
        return SequenceClassifierOutput(loss=classification_loss(logits, labels, self.num_labels), logits=logits)


# ---- transformers 2.x's pre-training model, in the reference library's names ---------------------------------
# Google's ALBERT pre-trains with a masked-LM head and a sentence-order head. transformers names them
# `predictions.*` and `sop_classifier.classifier.*` beside `albert.*`, so a state dict of this model (what the
# seed's converter saves) loads into transformers' AlbertForPreTraining as it is.

class AlbertMLMHead(nn.Module):
    """H -> E (dense, activation, LayerNorm), then the E-wide word table read backwards, plus a bias per entry."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.embedding_size)
        self.activation = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.decoder = Linear(config.embedding_size, config.vocab_size, bias=False)  # weight: the [V, E] table
        self.bias = nn.Parameter(torch.empty(config.vocab_size))

    def forward(self, hidden_states):
        narrowed = self.LayerNorm(self.activation(self.dense(hidden_states)))  # [B, L, H] -> [B, L, E]
        return self.decoder(narrowed) + self.bias  # [B, L, E] -> [B, L, V]


class AlbertSOPHead(nn.Module):
    """Sentence order: are the two segments in their original order? [B, H] -> [B, 2]."""

    def __init__(self, config):
        super().__init__()
        self.classifier = Linear(config.hidden_size, 2)


class AlbertForPreTraining(_AlbertVariant):
    """ALBERT with both pre-training heads: outputs (loss), prediction scores [B, L, V], sentence-order scores
    [B, 2]. The model the seed's convert_albert_original_tf_checkpoint_to_pytorch.py fills."""

    albert_zh_class = AlbertZhForPreTraining
    reads_pretraining_heads = True
    tied_keys = ("predictions.decoder.weight",)

    def __init__(self, config: AlbertConfig, initialize=True):
        config = albert_config_of(config)
        super().__init__(config)
        self.albert = AlbertModel(config, initialize=False)
        self.predictions = AlbertMLMHead(config)
        self.sop_classifier = AlbertSOPHead(config)
        self.tie_weights()
        if initialize:
            self.init_weights()

    def tie_weights(self):
        """The decoder is the word-embedding table: one tensor under two names."""
        self.predictions.decoder.weight = self.albert.embeddings.word_embeddings.weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, masked_lm_labels=None,
                sentence_order_label=None) -> PreTrainingOutput:
        output = self.albert(input_ids, attention_mask, token_type_ids)  # every row of the last depth
        logits = self.predictions(output.last_hidden_state)  # [B, L, V]
        order = self.sop_classifier.classifier(output.pooler_output)  # [B, H] -> [B, 2]
        loss = None
        if masked_lm_labels is not None and sentence_order_label is not None:
            loss = masked_lm_loss(logits, masked_lm_labels) + F.cross_entropy(order, sentence_order_label)
        return PreTrainingOutput(loss=loss, prediction_logits=logits, seq_relationship_logits=order)


def load_tf_weights_in_albert(model, config, tf_checkpoint_path):
    """transformers 2.x's converter step: fill `model` (an ALBERT model here, either variant) from a TensorFlow
    checkpoint read without TensorFlow, pre-training heads included. Returns the model.

    Both layouts are read (tf_checkpoint.albert_state_dict tells them apart by their names): brightmart's
    albert_zh (`bert/encoder/layer_shared/...`, what the seed's converter was written for) into an albert_zh
    model, Google's (`bert/encoder/transformer/group_0/...`) into modeling_albert.py's. `config` is 2.x's
    argument (a BertConfig there); it must describe the model's own config.
    """
    from .configuration_bert import LoadingError
    from .tf_checkpoint import TFCheckpoint, albert_checkpoint_layout, albert_state_dict
    if config is not None and albert_config_of(config) != model.config:
        raise LoadingError(f"load_tf_weights_in_albert: the config given differs from {type(model).__name__}'s own")
    checkpoint = TFCheckpoint(tf_checkpoint_path)
    layout = albert_checkpoint_layout(checkpoint)
    wanted = "albert_zh" if isinstance(model.config, AlbertZhConfig) else "google"
    if layout != wanted:
        raise LoadingError(f"{checkpoint.index_path}: a checkpoint in {layout} ALBERT's layout, but "
                           f"{type(model).__name__} is {wanted}'s (a config with ln_type is albert_zh's, one "
                           "without is Google's); use the config.json that came with the checkpoint")
    load_converted_checkpoint(model, albert_state_dict(checkpoint, heads=True).state_dict, tf_checkpoint_path)
    return model


# ---- --reinit_layers for ALBERT --------------------------------------------------------------------------

def top_group_selectors(config, num_layers, pooler=False):
    """What `--reinit_layers N` selects in an ALBERT: the top N layer groups (and the pooler).

    Re-initializing the top N layers (Zhang et al.) assumes that the top layers have weights of their own. In
    ALBERT they do only when there are several groups: with 12 layers in 4 groups, group 3 serves depths 9-11
    alone, so "the top 1" means group 3, i.e. the top 3 depths. With a single group (every released ALBERT,
    albert_zh included) one set of weights serves every depth, so any N from 1 to num_hidden_layers selects
    that one group, and re-initializing it changes every depth, not only the top N. `top_group_meaning` is
    the sentence run_classifier logs to say which depths the selection serves.
    """
    if isinstance(config, AlbertZhConfig):
        return albert_zh_layer_selectors(config, num_layers, pooler)
    groups, depths = config.num_hidden_groups, config.num_hidden_layers
    if groups == 1:
        if not 0 <= num_layers <= depths:
            raise BadValueError(f"--reinit_layers {num_layers}: this ALBERT has {depths} depths (choose 0..{depths}), "
                                "all served by its one layer group albert.encoder.albert_layer_groups.0")
        first = 0 if num_layers else groups
    else:
        if not 0 <= num_layers <= groups:
            raise BadValueError(f"cannot re-initialize the top {num_layers} layer groups: this ALBERT has {groups} "
                                f"(choose 0..{groups}); each group serves "
                                f"{depths / groups:g} consecutive depths")
        first = groups - num_layers
    selectors = [f"albert.encoder.albert_layer_groups.{index}" for index in range(first, groups)]
    if pooler:
        selectors.append("albert.pooler")
    return selectors


def top_group_meaning(config, num_layers):
    """The sentence that says which depths `--reinit_layers N` changed, where that is more than the top N
    (weights shared across depths); None where the N groups serve exactly N depths, or N = 0."""
    if isinstance(config, AlbertZhConfig):
        return albert_zh_layers_meaning(config, num_layers)
    groups, depths = config.num_hidden_groups, config.num_hidden_layers
    if not num_layers:
        return None
    if groups == 1:
        return (f"this ALBERT shares one layer group across all {depths} depths: --reinit_layers {num_layers} "
                "re-initializes that group (albert.encoder.albert_layer_groups.0), so every depth changes, not "
                f"only the top {num_layers}")
    first = groups - num_layers
    served = [depth for depth in range(depths) if config.group_of_depth(depth) >= first]
    if len(served) == num_layers:
        return None
    chosen = f"group {first}, which serves" if num_layers == 1 else f"groups {first}-{groups - 1}, which serve"
    return (f"this ALBERT has {groups} layer groups for {depths} depths: --reinit_layers {num_layers} "
            f"re-initializes {chosen} the top {len(served)} depths ({served[0]}-{served[-1]}), not only the top "
            f"{num_layers}")


def _demo():
    config = AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                          num_hidden_groups=2, num_attention_heads=4, intermediate_size=64)
    torch.manual_seed(0)
    model = AlbertModel(config).eval()
    input_ids = torch.tensor([[2, 17, 42, 3]])
    print("input_ids                      ", list(input_ids.shape), "[B, L]")
    with torch.no_grad():
        embedded = model.embeddings(input_ids, torch.zeros_like(input_ids))
        print("embeddings                     ", list(embedded.shape), "[B, L, E]")
        hidden = model.encoder.embedding_hidden_mapping_in(embedded)
        print("embedding_hidden_mapping_in    ", list(hidden.shape), "[B, L, H]")
        bias = attention_bias_from_mask(torch.ones_like(input_ids), hidden.dtype)
        for depth in range(config.num_hidden_layers):
            group = config.group_of_depth(depth)
            hidden = model.encoder.albert_layer_groups[group](hidden, bias)
            print(f"depth {depth}: albert_layer_groups.{group} ", list(hidden.shape), "[B, L, H]")
        print("pooler_output                  ", list(model(input_ids).pooler_output.shape), "[B, H]")
    print(f"{sum(p.numel() for p in model.parameters())} parameters for {config.num_hidden_layers} depths")


if __name__ == "__main__":
    _demo()
