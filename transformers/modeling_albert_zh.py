"""Step 3 for albert_zh: brightmart's Chinese ALBERT, the one Read_Bert_Code's `--model_type albert` loads.

albert_zh is not modeling_albert.py's network under other names. Both make the vocabulary table narrow (E wide)
and share one set of layer weights across depth, but they widen to H at different places:

    Google's ALBERT (modeling_albert.py):   word(E) + position(E) + segment(E) -> LayerNorm(E) -> [E, H] -> layers
    albert_zh (this file):                  word(E) -> word_embeddings_2 [E, H] -> + position(H) + segment(H)
                                            -> LayerNorm(H) -> layers

and albert_zh's config picks one of two blocks with `ln_type` (configuration_albert.AlbertZhConfig):

    postln  BERT's block: x = LayerNorm(x + attention(x)); x = LayerNorm(x + ffn(x))
    preln   x = x + attention(LayerNorm_a(x)); x = x + ffn(LayerNorm_f(x)); nothing normalizes the last
            layer's output (the pooler reads it as it is)

Takes what a tokenizer made (BERT's vocab.txt: albert_zh was pre-trained on BERT's Chinese tokenization) and
hands on `BertModelOutput` or, with a head, `SequenceClassifierOutput` / `PreTrainingOutput`.

Parameter names are albert_zh's own, as its converted checkpoints and the seed's package name them, so that
those checkpoints load as they are: `bert.embeddings.word_embeddings_2.weight`,
`bert.encoder.layer_shared.attention.self.query.weight` (BERT's layer names under `layer_shared`), and for
pre-training `cls.predictions.*`. The base model is `model.bert`, as in transformers 2.x.

Shape legend: B batch size, L sequence length, E embedding size, H hidden size, N heads, D head size,
I intermediate size, V vocabulary size, C number of labels, Q rows that ask queries (L; 1 in the classifier's
last depth).
"""
import torch
import torch.nn.functional as F
from torch import nn

from .configuration_albert import AlbertZhConfig
from .file_utils import BadValueError
from .modeling_bert import (BertLayer, BertModelOutput, BertPooler, BertPredictionHeadTransform, Dropout,
                            PreTrainingOutput, SequenceClassifierOutput, attention_bias_from_mask,
                            classification_loss, default_masks, dropout_add, masked_lm_loss)
from .compat_2x import PreTrainedModel2x
from .modeling_utils import Embedding, Linear


class AlbertZhEmbeddings(nn.Module):
    """The word vector (E wide) projected to H, then H-wide position and segment vectors added, LayerNorm, dropout.

    The projection `word_embeddings_2` has no bias: in brightmart's TensorFlow code it is a bare [E, H] matrix
    named after the table it multiplies (`word_embeddings` + `_2`).
    """

    def __init__(self, config):
        super().__init__()
        self.word_embeddings = Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.word_embeddings_2 = Linear(config.embedding_size, config.hidden_size, bias=False)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        seq_length = input_ids.shape[1]
        if seq_length > self.position_embeddings.num_embeddings:
            raise ValueError(f"sequence length {seq_length} exceeds max_position_embeddings "
                             f"({self.position_embeddings.num_embeddings}); lower max_seq_length")
        words = self.word_embeddings_2(self.word_embeddings(input_ids))  # [B, L] -> [B, L, E] -> [B, L, H]
        positions = self.position_embeddings(torch.arange(seq_length, device=input_ids.device))  # [L, H]
        embeddings = words + self.token_type_embeddings(token_type_ids) + positions  # [B, L, H]
        return self.dropout(self.LayerNorm(embeddings))


class AlbertZhPreLNLayer(BertLayer):
    """ln_type "preln": BERT's layer with the same parameters (so the same names), each LayerNorm moved in
    front of its sub-block. The attention's LayerNorm (`attention.output.LayerNorm`) normalizes the layer's
    input, the feed-forward's (`output.LayerNorm`) the attention's output; both residuals add un-normalized
    vectors, so the stream itself is never normalized between depths."""

    def forward(self, hidden_states, attention_bias, first_token_only=False, all_probs=None):
        attention, output = self.attention, self.output
        queries_from = hidden_states[:, :1] if first_token_only else hidden_states  # [B, Q, H]
        normed = attention.output.LayerNorm(hidden_states)  # [B, L, H]
        normed_queries = normed[:, :1] if first_token_only else normed  # [B, Q, H]
        context = attention.self(normed_queries, normed, attention_bias, all_probs)  # [B, Q, H]
        attended = dropout_add(attention.output.dense(context), queries_from, attention.output.dropout.p,
                               self.training)  # [B, Q, H] + residual
        widened = self.intermediate(output.LayerNorm(attended))  # [B, Q, H] -> [B, Q, I]
        return dropout_add(output.dense(widened), attended, output.dropout.p, self.training)  # [B, Q, I] -> [B, Q, H]


class AlbertZhEncoder(nn.Module):
    """One layer, `layer_shared`, run num_hidden_layers times: its gradient sums what every depth asks of it."""

    def __init__(self, config):
        super().__init__()
        self.num_hidden_layers = config.num_hidden_layers
        self.layer_shared = AlbertZhPreLNLayer(config) if config.ln_type == "preln" else BertLayer(config)

    def forward(self, hidden_states, attention_bias, first_token_only=False):
        last = self.num_hidden_layers - 1
        for depth in range(self.num_hidden_layers):
            # [B, L, H] -> [B, L, H]; the last depth with first_token_only: [B, L, H] -> [B, 1, H]
            hidden_states = self.layer_shared(hidden_states, attention_bias, first_token_only and depth == last)
        return hidden_states


class AlbertZhModel(PreTrainedModel2x):
    """The encoder without a task head: ids -> one vector per token and a pooled vector per sentence."""

    config_class = AlbertZhConfig
    base_model_prefix = "bert"

    def __init__(self, config: AlbertZhConfig, initialize=True):
        super().__init__(config)
        self.embeddings = AlbertZhEmbeddings(config)
        self.encoder = AlbertZhEncoder(config)
        self.pooler = BertPooler(config)  # `bert.pooler.dense`, as in BERT
        if initialize:  # from_pretrained passes False and fills the tensors itself
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                first_token_only=False) -> BertModelOutput:
        """first_token_only=True: the last depth computes the [CLS] row alone (see BertEncoder)."""
        attention_mask, token_type_ids = default_masks(input_ids, attention_mask, token_type_ids)
        embedded = self.embeddings(input_ids, token_type_ids)  # [B, L] -> [B, L, H]
        attention_bias = attention_bias_from_mask(attention_mask, embedded.dtype)  # [B, L] -> [B, 1, 1, L]
        sequence = self.encoder(embedded, attention_bias, first_token_only)  # [B, L or 1, H]
        return BertModelOutput(last_hidden_state=sequence, pooler_output=self.pooler(sequence))  # pooled [B, H]


class AlbertZhForSequenceClassification(PreTrainedModel2x):
    """AlbertZhModel plus a linear head on the pooled vector: C class scores, or one number when C == 1."""

    config_class = AlbertZhConfig
    base_model_prefix = "bert"

    def __init__(self, config: AlbertZhConfig, initialize=True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = AlbertZhModel(config, initialize=False)  # initialized below, together with the head
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        if initialize:
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> SequenceClassifierOutput:
        pooled = self.bert(input_ids, attention_mask, token_type_ids, first_token_only=True).pooler_output
        logits = self.classifier(self.dropout(pooled))  # [B, H] -> [B, C]
        return SequenceClassifierOutput(loss=classification_loss(logits, labels, self.num_labels), logits=logits)


class AlbertZhLMPredictionHead(nn.Module):
    """Scores each vocabulary entry at each position: BERT's H -> H transform, back to E, then the word table.

    Both ways back are the embeddings' own matrices read backwards: E from H through word_embeddings_2
    (transposed), V from E through the word table. brightmart's TensorFlow code multiplies by those variables
    themselves; the seed's package keeps a copy of the first as `cls.predictions.project_layer.weight`. Here
    neither is a parameter of the head, so a checkpoint's project_layer copy is listed as unused.
    """

    def __init__(self, config):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = Linear(config.embedding_size, config.vocab_size, bias=False)  # weight: the [V, E] table
        self.bias = nn.Parameter(torch.empty(config.vocab_size))

    def forward(self, hidden_states, projection):
        """projection: word_embeddings_2's weight [H, E]."""
        narrowed = self.transform(hidden_states) @ projection  # [B, L, H] @ [H, E] -> [B, L, E]
        return self.decoder(narrowed) + self.bias  # [B, L, E] -> [B, L, V]


class AlbertZhPreTrainingHeads(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.predictions = AlbertZhLMPredictionHead(config)
        self.seq_relationship = Linear(config.hidden_size, 2)


class AlbertZhForPreTraining(PreTrainedModel2x):
    """albert_zh with its pre-training heads (masked LM, next sentence): the model its TF checkpoints convert into.
    Outputs (loss), prediction scores [B, L, V], next-sentence scores [B, 2]."""

    config_class = AlbertZhConfig
    base_model_prefix = "bert"
    reads_pretraining_heads = True
    tied_keys = ("cls.predictions.decoder.weight",)

    def __init__(self, config: AlbertZhConfig, initialize=True):
        super().__init__(config)
        self.bert = AlbertZhModel(config, initialize=False)
        self.cls = AlbertZhPreTrainingHeads(config)
        self.tie_weights()
        if initialize:
            self.init_weights()

    def tie_weights(self):
        """The decoder is the word-embedding table: one tensor under two names."""
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, masked_lm_labels=None,
                next_sentence_label=None) -> PreTrainingOutput:
        output = self.bert(input_ids, attention_mask, token_type_ids)  # every row of the last depth
        projection = self.bert.embeddings.word_embeddings_2.weight  # [H, E]
        logits = self.cls.predictions(output.last_hidden_state, projection)  # [B, L, V]
        next_sentence = self.cls.seq_relationship(output.pooler_output)  # [B, H] -> [B, 2]
        loss = None
        if masked_lm_labels is not None and next_sentence_label is not None:
            loss = masked_lm_loss(logits, masked_lm_labels) + F.cross_entropy(next_sentence, next_sentence_label)
        return PreTrainingOutput(loss=loss, prediction_logits=logits, seq_relationship_logits=next_sentence)


def albert_zh_layer_selectors(config, num_layers, pooler=False):
    """What `--reinit_layers N [--reinit_pooler]` selects in albert_zh.

    "The top N layers" (Zhang et al.) are layers with weights of their own. albert_zh has one layer,
    `layer_shared`, whose weights serve all num_hidden_layers depths: the top depth has nothing that is not also
    the bottom depth's. So N >= 1 can only select `layer_shared` itself, whatever N is, and re-initializing it
    changes every depth; `albert_zh_layers_meaning` is the sentence run_classifier logs to say so. N = 0 with
    --reinit_pooler selects `bert.pooler` alone, and --reinit_keys selects parts of the shared layer by name
    (e.g. `bert.encoder.layer_shared.output.dense`).
    """
    depths = config.num_hidden_layers
    if not 0 <= num_layers <= depths:
        raise BadValueError(f"--reinit_layers {num_layers}: albert_zh has {depths} depths (choose 0..{depths}), "
                            "all served by its one shared layer bert.encoder.layer_shared")
    selectors = ["bert.encoder.layer_shared"] if num_layers else []
    if pooler:
        selectors.append("bert.pooler")
    return selectors


def albert_zh_layers_meaning(config, num_layers):
    """The sentence that says what `--reinit_layers N` did to albert_zh (None for N = 0)."""
    if not num_layers:
        return None
    return (f"albert_zh shares one layer across all {config.num_hidden_layers} depths: --reinit_layers "
            f"{num_layers} re-initializes that shared layer (bert.encoder.layer_shared), so every depth changes, "
            f"not only the top {num_layers}")


def _demo():
    for ln_type in ("postln", "preln"):
        config = AlbertZhConfig(vocab_size=100, embedding_size=8, hidden_size=16, num_hidden_layers=3,
                                num_attention_heads=2, intermediate_size=32, ln_type=ln_type)
        torch.manual_seed(0)
        model = AlbertZhModel(config).eval()
        input_ids = torch.tensor([[2, 17, 42, 3]])
        with torch.no_grad():
            words = model.embeddings.word_embeddings(input_ids)
            print(f"{ln_type}: word_embeddings {list(words.shape)} [B, L, E] -> word_embeddings_2 "
                  f"{list(model.embeddings.word_embeddings_2(words).shape)} [B, L, H]; last_hidden_state "
                  f"{list(model(input_ids).last_hidden_state.shape)} after {config.num_hidden_layers} depths of "
                  "layer_shared")
        print(f"  {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    _demo()
