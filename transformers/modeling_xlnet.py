"""Step 3 for XLNet: the network, from token ids to a sequence vector and class scores.

Takes `input_ids`, `attention_mask` and `token_type_ids` as `tokenization_xlnet.XLNetTokenizer` makes them and a
batch pads them, ON THE LEFT (see "Why left padding" below), and hands on `XLNetModelOutput` (one vector per
token) or, with the head, `SequenceClassifierOutput` (logits and, given labels, the loss).

How XLNet differs from BERT (modeling_bert.py), for a reader who knows BERT:
  - No position embeddings are added to the tokens. Instead every attention score gets a term for how far apart
    the two tokens are (relative attention, from Transformer-XL): a sine/cosine encoding of the distance
    i - j, projected by its own weights `r`.
  - No segment embeddings either. A score gets one learned term when the two tokens are in the same segment and
    another when they are not (`seg_embed`): XLNet only asks "same segment?", never "which segment?".
  - Each of the three score terms (content, position, segment) has its own learned bias per head
    (`r_w_bias`, `r_r_bias`, `r_s_bias`), added to the query.
  - The sentence is read from the LAST token, `<cls>`, which the tokenizer puts at the end (`a <sep> <cls>`).
  - The attention projections are plain [H, N, D] tensors (`q`, `k`, `v`, `o`, `r`), not Linear layers, and
    have no biases; the parameter names below are those that transformers saves.

Why left padding: the sequence summary reads position -1. With padding on the right, position -1 would be a
padding token for every text shorter than the batch; on the left, it is always the text's own `<cls>`. Because
attention only sees distances (i - j) and padding keys are masked out, shifting a text right by k padding
tokens changes nothing that a real token computes: the same text gives the same logits in any batch.

What is not built: XLNet's pre-training machinery (the permutation mask `perm_mask`, the query stream `g` with
`target_mapping`, the memory `mems` of earlier segments, bi_data). A classifier never uses them. `mask_emb`, the
query stream's start vector, is still a parameter, so that checkpoints load and save with all their tensors.

Also here, for transformers 2.x's converter script: `XLNetLMHeadModel` (the pre-training head),
`XLNetForQuestionAnswering` (SQuAD's start/end/answerable heads, as the reference computes them) and
`load_tf_weights_in_xlnet`, which fills any of these from CMU's TensorFlow checkpoint (tf_checkpoint.py reads it).

Shape legend, used in the comments of this file:
    B batch size, L sequence length, H hidden size (d_model), N attention heads, D head size (d_head, H = N * D),
    I feed-forward size (d_inner), R = 2L relative distances (L down to -L + 1), C number of labels.
Einsum letters follow the legend; `i` is a query position and `j` a key position, both in 0..L-1.

Run `python -m transformers.modeling_xlnet` to push a few token ids through a small random XLNet (or
`--model DIR` for a saved one) and print the shape after each step.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .configuration_xlnet import XLNetConfig
from .modeling_bert import SequenceClassifierOutput, classification_loss, get_activation, load_converted_checkpoint
from .compat_2x import PreTrainedModel2x
from .modeling_utils import Embedding, Linear, ModelOutput, top_layer_selectors


@dataclass(eq=False)
class XLNetModelOutput(ModelOutput):
    last_hidden_state: torch.Tensor  # [B, L, H] one vector per token


# ---- positions: the relative encoding -----------------------------------------------------------------

def relative_positional_encoding(length, hidden_size, clamp_len=-1, device=None):
    """[R, H] sine/cosine encodings of the distances L, L-1, ..., 1, 0, -1, ..., -L+1 (R = 2L rows).

    Row p encodes the distance L - p. Query i and key j are (i - j) apart, which is row L - i + j (see
    `rel_shift`). The encoding is the Transformer's: H/2 frequencies 1 / 10000^(2k/H); first all sines, then
    all cosines. It holds no weights, so XLNet has no length limit from position tables (unlike BERT's 512).
    """
    # The distances from L down to -L + 1; [R]. Computed as integers first, then made float, as the reference.
    distances = torch.arange(length, -length, -1, dtype=torch.int64, device=device).float()
    if clamp_len > 0:
        distances = distances.clamp(-clamp_len, clamp_len)
    steps = torch.arange(0, hidden_size, 2, dtype=torch.int64, device=device).float()  # 0, 2, 4, ..; [H/2]
    inverse_frequency = 1 / torch.pow(10000, steps / hidden_size)  # [H/2]
    angles = distances[:, None] * inverse_frequency[None, :]  # [R, 1] * [1, H/2] -> [R, H/2]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # [R, H/2] twice -> [R, H]


def rel_shift(position_scores, length):
    """[B, N, L, R] scores of each query against every distance -> [B, N, L, L] scores of each query-key pair.

    Why: `position_scores[b, n, i, p]` is query i's score for the distance in row p of the encoding (L - p).
    One einsum computed it for all R distances at once, because every query needs the same encodings. But
    attention wants, for key j, the score of the distance i - j, i.e. column p = L - i + j. So each query row is
    read from a different starting column: row i from column L - i on. With L = 3 (distances 3, 2, 1, 0, -1, -2):

        query 0 reads columns 3, 4, 5  -> distances  0, -1, -2   (keys 0, 1, 2)
        query 1 reads columns 2, 3, 4  -> distances  1,  0, -1
        query 2 reads columns 1, 2, 3  -> distances  2,  1,  0

    The reference does this with a reshape trick (view the [L, R] block as [R, L], drop a row, view it back);
    `gather` with the column numbers written out does the same selection and says what it selects.
    """
    rows = torch.arange(length, device=position_scores.device)
    columns = length - rows[:, None] + rows[None, :]  # [L, 1] and [1, L] -> [L, L]: L - i + j
    batch, heads = position_scores.shape[:2]
    index = columns.expand(batch, heads, length, length)  # [L, L] -> [B, N, L, L]
    return position_scores.gather(-1, index)  # [B, N, L, R] -> [B, N, L, L]


# ---- one layer: relative attention, then feed-forward --------------------------------------------------

class XLNetRelativeAttention(nn.Module):
    """Multi-head attention whose scores add a content, a position and a segment term, then residual + LayerNorm.

    For query i and key j (each term also has its own bias vector per head, added to the query):
        content   (q_i + r_w_bias) . k_j            what token j says
        position  (q_i + r_r_bias) . r_(i-j)        how far away j is, from the encoding projected by `r`
        segment   (q_i + r_s_bias) . seg_embed[s]   s = 0 when i and j are in the same segment, 1 when not
    """

    # Bare [H, N, D] / [N, D] tensors rather than Linear layers: the init rule draws them N(0, initializer_range)
    # (modeling_utils.init_parameter reads this list), as the reference initializes them.
    normal_init_parameters = ("q", "k", "v", "o", "r", "r_r_bias", "r_s_bias", "r_w_bias", "seg_embed")

    def __init__(self, config):
        super().__init__()
        heads, head_size = config.n_head, config.d_head
        self.scale = 1 / math.sqrt(head_size)
        # Allocated, not initialized: values come from a checkpoint or from init_weights (see Linear).
        self.q = nn.Parameter(torch.empty(config.d_model, heads, head_size))  # [H, N, D]
        self.k = nn.Parameter(torch.empty(config.d_model, heads, head_size))  # [H, N, D]
        self.v = nn.Parameter(torch.empty(config.d_model, heads, head_size))  # [H, N, D]
        self.o = nn.Parameter(torch.empty(config.d_model, heads, head_size))  # [H, N, D], used as [N, D] -> H
        self.r = nn.Parameter(torch.empty(config.d_model, heads, head_size))  # [H, N, D], for the encodings
        self.r_r_bias = nn.Parameter(torch.empty(heads, head_size))  # [N, D] position-term bias
        self.r_s_bias = nn.Parameter(torch.empty(heads, head_size))  # [N, D] segment-term bias
        self.r_w_bias = nn.Parameter(torch.empty(heads, head_size))  # [N, D] content-term bias
        self.seg_embed = nn.Parameter(torch.empty(2, heads, head_size))  # [2, N, D]: same segment, other segment
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states, positions, other_segment, attention_bias):
        """hidden_states [B, L, H]; positions [B, R, H] encodings; other_segment [B, L, L] bool or None;
        attention_bias [B, 1, L, L] or None. Returns [B, L, H]."""
        length = hidden_states.shape[1]
        query = torch.einsum("blh,hnd->blnd", hidden_states, self.q)  # [B, L, H] x [H, N, D] -> [B, L, N, D]
        key = torch.einsum("blh,hnd->blnd", hidden_states, self.k)  # -> [B, L, N, D]
        value = torch.einsum("blh,hnd->blnd", hidden_states, self.v)  # -> [B, L, N, D]
        position_key = torch.einsum("brh,hnd->brnd", positions, self.r)  # [B, R, H] x [H, N, D] -> [B, R, N, D]

        # Content: [B, L(i), N, D] . [B, L(j), N, D] -> [B, N, L, L]
        content = torch.einsum("bind,bjnd->bnij", query + self.r_w_bias, key)
        # Position: every query against every distance, [B, N, L, R], then each key's distance picked out.
        position = torch.einsum("bind,brnd->bnir", query + self.r_r_bias, position_key)
        position = rel_shift(position, length)  # [B, N, L, R] -> [B, N, L, L]
        scores = content + position
        if other_segment is not None:
            # Each query's two possible segment scores, [B, L, N, D] . [2, N, D] -> [B, N, L, 2]; then each key
            # takes the one its segment relation asks for. [B, 1, L, L] chooses between [B, N, L, 1] columns.
            segment = torch.einsum("bind,snd->bnis", query + self.r_s_bias, self.seg_embed)
            scores = scores + torch.where(other_segment[:, None], segment[..., 1:], segment[..., :1])
        # Dividing by sqrt(D) keeps the scores' variance near 1 whatever the head size (as in BERT).
        scores = scores * self.scale
        if attention_bias is not None:
            scores = scores + attention_bias  # [B, N, L, L] + [B, 1, L, L]: padding keys -> exp(score) = 0
        probs = self.dropout(torch.softmax(scores, dim=-1))  # [B, N, L, L]: each query row sums to 1 over keys
        context = torch.einsum("bnij,bjnd->bind", probs, value)  # [B, N, L, L] x [B, L, N, D] -> [B, L, N, D]

        # Post-attention: heads back to H through `o`, dropout, residual, LayerNorm.
        output = torch.einsum("bind,hnd->bih", context, self.o)  # [B, L, N, D] x [H, N, D] -> [B, L, H]
        return self.layer_norm(self.dropout(output) + hidden_states)


class XLNetFeedForward(nn.Module):
    """Widen each token vector to I, the non-linearity, narrow back to H; residual + LayerNorm (as BERT's)."""

    def __init__(self, config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.layer_1 = Linear(config.d_model, config.d_inner)
        self.layer_2 = Linear(config.d_inner, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.activation = get_activation(config.ff_activation)

    def forward(self, hidden_states):
        inner = self.dropout(self.activation(self.layer_1(hidden_states)))  # [B, L, H] -> [B, L, I]
        output = self.dropout(self.layer_2(inner))  # [B, L, I] -> [B, L, H]
        return self.layer_norm(output + hidden_states)


class XLNetLayer(nn.Module):
    """One block: relative attention (tokens exchange information) then feed-forward (each token alone)."""

    def __init__(self, config):
        super().__init__()
        self.rel_attn = XLNetRelativeAttention(config)
        self.ff = XLNetFeedForward(config)

    def forward(self, hidden_states, positions, other_segment, attention_bias):
        attended = self.rel_attn(hidden_states, positions, other_segment, attention_bias)  # [B, L, H]
        return self.ff(attended)  # [B, L, H] -> [B, L, H]


# ---- masks ------------------------------------------------------------------------------------------------

def attention_bias_from_mask(attention_mask, dtype):
    """[B, L] mask of 1 (real token) / 0 (padding) -> [B, 1, L, L] additive bias for the attention scores.

    As in BERT, the most negative float is added to the scores of padding keys, so exp(score) is exactly 0.
    One difference: a token may always attend to itself, padding included. XLNet's content stream is built that
    way (in pre-training, a token's content vector always sees its own token), and the reference keeps it.
    It changes nothing for real tokens: their rows still see no padding.
    """
    length = attention_mask.shape[1]
    padding_key = (attention_mask == 0)[:, None, :]  # [B, L] -> [B, 1, L(j)]: the same for every query row
    itself = torch.eye(length, dtype=torch.bool, device=attention_mask.device)  # [L, L]: i == j
    masked = padding_key & ~itself  # [B, 1, L] & [L, L] -> [B, L, L]
    return (masked[:, None].to(dtype)) * torch.finfo(dtype).min  # [B, L, L] -> [B, 1, L, L]


# ---- the model --------------------------------------------------------------------------------------------

class XLNetPreTrainedModel(PreTrainedModel2x):
    """XLNet's checkpoints and config: a head model names the encoder's weights `transformer.*`."""

    config_class = XLNetConfig
    base_model_prefix = "transformer"


class XLNetModel(XLNetPreTrainedModel):
    """The encoder without a head: ids -> one vector per token."""

    normal_init_parameters = ("mask_emb",)

    def __init__(self, config: XLNetConfig, initialize=True):
        super().__init__(config)
        self.word_embedding = Embedding(config.vocab_size, config.d_model)
        # The query stream's start vector in pre-training; unused here, kept so checkpoints load whole. [1, 1, H]
        self.mask_emb = nn.Parameter(torch.empty(1, 1, config.d_model))
        # `layer.0` ... `layer.{n-1}`: the index is part of every parameter name and reinit selector
        # (`transformer.layer.11`).
        self.layer = nn.ModuleList(XLNetLayer(config) for _ in range(config.n_layer))
        self.dropout = nn.Dropout(config.dropout)
        if initialize:  # from_pretrained passes False and fills the tensors itself
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> XLNetModelOutput:
        """attention_mask None: every token is real. token_type_ids None: no segment term at all (as in the
        reference; a single text with its `<sep>` and `<cls>` still has segment ids 0 0 .. 0 2, see the tokenizer).
        """
        batch, length = input_ids.shape
        hidden_states = self.dropout(self.word_embedding(input_ids))  # [B, L] -> [B, L, H]
        positions = relative_positional_encoding(length, self.config.d_model, self.config.clamp_len,
                                                 input_ids.device).to(hidden_states.dtype)  # [R, H]
        # One dropout draw per sequence, as the reference: [R, H] -> [B, R, H].
        positions = self.dropout(positions.expand(batch, -1, -1))
        # Segments: only "same or not" matters, so padding's and <cls>'s ids need only differ from the text's.
        other_segment = None  # [B, L(i), L(j)]: True where token i and token j are in different segments
        if token_type_ids is not None:
            other_segment = token_type_ids[:, :, None] != token_type_ids[:, None, :]  # [B, L, 1] vs [B, 1, L]
        attention_bias = None if attention_mask is None else attention_bias_from_mask(attention_mask,
                                                                                       hidden_states.dtype)
        for layer in self.layer:
            hidden_states = layer(hidden_states, positions, other_segment, attention_bias)  # [B, L, H]
        return XLNetModelOutput(last_hidden_state=self.dropout(hidden_states))


class XLNetSequenceSummary(nn.Module):
    """The last token's vector -> the sequence vector: dropout, dense, tanh, dropout (BERT's pooler, at the end).

    Why the last token: XLNet's tokenizer writes `<cls>` at the END (`a <sep> <cls>`, `a <sep> b <sep> <cls>`),
    as in pre-training, where the model read text left to right in a permuted order and the last position could
    see everything. With left padding it is at position -1 in every row of a batch.
    """

    def __init__(self, config):
        super().__init__()
        width = config.num_labels if config.summary_proj_to_labels else config.d_model
        self.summary = Linear(config.d_model, width) if config.summary_use_proj else nn.Identity()
        self.activation = get_activation(config.summary_activation) if config.summary_activation else nn.Identity()
        self.first_dropout = nn.Dropout(config.summary_first_dropout)
        self.last_dropout = nn.Dropout(config.summary_last_dropout)

    def forward(self, hidden_states):
        last_token = hidden_states[:, -1]  # [B, L, H] -> [B, H], the <cls> position
        summary = self.activation(self.summary(self.first_dropout(last_token)))  # [B, H] -> [B, H]
        return self.last_dropout(summary)


class XLNetForSequenceClassification(XLNetPreTrainedModel):
    """XLNetModel plus the sequence summary and a linear head: C class scores, or one number when C == 1.

    `sequence_summary.*` is in a checkpoint only if it was fine-tuned; `logits_proj.*` is new for a new task.
    Both are then reported as missing and start from the init rule; that is expected, not an error.
    """

    def __init__(self, config: XLNetConfig, initialize=True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = XLNetModel(config, initialize=False)  # initialized below, together with the head
        self.sequence_summary = XLNetSequenceSummary(config)
        summary_width = config.num_labels if config.summary_proj_to_labels else config.d_model
        self.logits_proj = Linear(summary_width, config.num_labels)
        if initialize:
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> SequenceClassifierOutput:
        sequence = self.transformer(input_ids, attention_mask, token_type_ids).last_hidden_state  # [B, L, H]
        logits = self.logits_proj(self.sequence_summary(sequence))  # [B, L, H] -> [B, H] -> [B, C]
        return SequenceClassifierOutput(loss=classification_loss(logits, labels, self.num_labels), logits=logits)


# ---- the pre-training head and the SQuAD head (transformers 2.x's, for its converter) -------------------------

@dataclass(eq=False)
class XLNetLMHeadOutput(ModelOutput):
    loss: Optional[torch.Tensor]  # scalar; None without labels
    logits: torch.Tensor  # [B, L, V] a score for every vocabulary entry at every position


class XLNetLMHeadModel(XLNetPreTrainedModel):
    """XLNetModel plus `lm_loss`: every position's vector read against the word-embedding table, plus a bias.

    The model CMU's pre-training checkpoints convert into (their `model/lm_loss/bias`; the weight is the table
    itself, tied as in CMU's `lm_loss(tie_weight=True)`). Without XLNet's query stream (see the module
    docstring), the scores come from the content stream at every position, as the reference computes them when it
    is given no `perm_mask` and no `target_mapping`.
    """

    tied_keys = ("lm_loss.weight",)

    def __init__(self, config: XLNetConfig, initialize=True):
        super().__init__(config)
        self.transformer = XLNetModel(config, initialize=False)
        self.lm_loss = Linear(config.d_model, config.vocab_size)
        self.tie_weights()
        if initialize:
            self.init_weights()

    def tie_weights(self):
        """`lm_loss.weight` is the word-embedding table: one [V, H] tensor under two names."""
        self.lm_loss.weight = self.transformer.word_embedding.weight

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> XLNetLMHeadOutput:
        sequence = self.transformer(input_ids, attention_mask, token_type_ids).last_hidden_state  # [B, L, H]
        logits = self.lm_loss(sequence)  # [B, L, H] x [V, H] -> [B, L, V]
        loss = None
        if labels is not None:  # -100 marks a position that is not scored
            # [B, L, V] -> [B*L, V] against labels [B, L] -> [B*L]
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return XLNetLMHeadOutput(loss=loss, logits=logits)


def mask_positions(scores, p_mask):
    """scores [..., L] with the positions where p_mask is 1 (question, <sep>, <cls>, padding) pushed to a score no
    softmax gives any weight: the reference's -1e30 (65500 in float16, whose range ends there)."""
    if p_mask is None:
        return scores
    floor = 65500 if p_mask.dtype == torch.float16 else 1e30
    return scores * (1 - p_mask) - floor * p_mask


class XLNetPoolerStartLogits(nn.Module):
    """Each position's vector -> one score for "the answer starts here"."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.d_model, 1)

    def forward(self, hidden_states, p_mask=None):
        return mask_positions(self.dense(hidden_states).squeeze(-1), p_mask)  # [B, L, H] -> [B, L]


class XLNetPoolerEndLogits(nn.Module):
    """Each position's vector, next to the start position's -> one score for "the answer ends here"."""

    def __init__(self, config):
        super().__init__()
        self.dense_0 = Linear(2 * config.d_model, config.d_model)
        self.LayerNorm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dense_1 = Linear(config.d_model, 1)

    def forward(self, hidden_states, start_states, p_mask=None):
        """hidden_states [.., L, H] and start_states of the same shape (the start's vector at every position)."""
        joined = torch.cat([hidden_states, start_states], dim=-1)  # [.., L, 2H]
        inner = self.LayerNorm(torch.tanh(self.dense_0(joined)))  # [.., L, 2H] -> [.., L, H]
        return mask_positions(self.dense_1(inner).squeeze(-1), p_mask)  # [.., L, H] -> [.., L]


class XLNetPoolerAnswerClass(nn.Module):
    """The start's vector and <cls>'s -> one score for "this question has no answer" (SQuAD 2.0)."""

    def __init__(self, config):
        super().__init__()
        self.dense_0 = Linear(2 * config.d_model, config.d_model)
        self.dense_1 = Linear(config.d_model, 1, bias=False)

    def forward(self, hidden_states, start_states, cls_index=None):
        """hidden_states [B, L, H]; start_states [B, H]; cls_index [B] or None (<cls> is last, as XLNet puts it)."""
        if cls_index is None:
            cls_states = hidden_states[:, -1]  # [B, L, H] -> [B, H]
        else:
            cls_states = hidden_states[torch.arange(hidden_states.shape[0]), cls_index]  # [B, H]
        inner = torch.tanh(self.dense_0(torch.cat([start_states, cls_states], dim=-1)))  # [B, 2H] -> [B, H]
        return self.dense_1(inner).squeeze(-1)  # [B, H] -> [B]


def _gather_positions(hidden_states, positions):
    """hidden_states [B, L, H], positions [B, K] -> [B, K, H]: the vectors at those positions."""
    index = positions[..., None].expand(-1, -1, hidden_states.shape[-1])  # [B, K] -> [B, K, H]
    return hidden_states.gather(1, index)


@dataclass(eq=False)
class XLNetQuestionAnsweringOutput(ModelOutput):
    """With start and end positions: the loss only. Without: the beam of candidate spans. The reference calls the
    beam's scores log-probabilities, but computes them with softmax: they are probabilities, kept as it has them."""
    loss: Optional[torch.Tensor] = None  # scalar
    start_top_log_probs: Optional[torch.Tensor] = None  # [B, S] the S = start_n_top most probable starts
    start_top_index: Optional[torch.Tensor] = None  # [B, S] their positions
    end_top_log_probs: Optional[torch.Tensor] = None  # [B, E * S] for each start, its E = end_n_top best ends
    end_top_index: Optional[torch.Tensor] = None  # [B, E * S]
    cls_logits: Optional[torch.Tensor] = None  # [B] the no-answer score


class XLNetForQuestionAnswering(XLNetPreTrainedModel):
    """XLNetModel plus SQuAD's three heads (start, end given the start, answerable), as transformers 2.x had it.

    Training (start_positions and end_positions given): the end head reads the true start, and the loss is the
    mean of the two cross-entropies, plus half the no-answer loss when cls_index and is_impossible are given.
    Inference: the S most probable starts, for each its E most probable ends (a beam search one step deep), and
    the no-answer score from the expected start vector. S and E are config.json's `start_n_top` and `end_n_top`.
    """

    def __init__(self, config: XLNetConfig, initialize=True):
        super().__init__(config)
        self.start_n_top = config.extra.get("start_n_top", 5)
        self.end_n_top = config.extra.get("end_n_top", 5)
        self.transformer = XLNetModel(config, initialize=False)
        self.start_logits = XLNetPoolerStartLogits(config)
        self.end_logits = XLNetPoolerEndLogits(config)
        self.answer_class = XLNetPoolerAnswerClass(config)
        if initialize:
            self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None,
                end_positions=None, is_impossible=None, cls_index=None, p_mask=None) -> XLNetQuestionAnsweringOutput:
        hidden_states = self.transformer(input_ids, attention_mask, token_type_ids).last_hidden_state  # [B, L, H]
        start_logits = self.start_logits(hidden_states, p_mask)  # [B, L]
        if start_positions is not None and end_positions is not None:
            start_states = _gather_positions(hidden_states, start_positions[:, None])  # [B, 1, H]
            end_logits = self.end_logits(hidden_states, start_states.expand_as(hidden_states), p_mask)  # [B, L]
            loss = (nn.functional.cross_entropy(start_logits, start_positions)
                    + nn.functional.cross_entropy(end_logits, end_positions)) / 2
            if cls_index is not None and is_impossible is not None:
                answerable = self.answer_class(hidden_states, start_states[:, 0], cls_index)  # [B]
                loss = loss + 0.5 * nn.functional.binary_cross_entropy_with_logits(answerable, is_impossible)
            return XLNetQuestionAnsweringOutput(loss=loss)

        length = hidden_states.shape[1]
        start_probs = torch.softmax(start_logits, dim=-1)  # [B, L]
        start_top, start_index = start_probs.topk(self.start_n_top, dim=-1)  # [B, S]
        # Every position read next to each candidate start: [B, L, S, H] twice.
        start_states = _gather_positions(hidden_states, start_index)[:, None].expand(-1, length, -1, -1)
        expanded = hidden_states[:, :, None].expand_as(start_states)
        # p_mask [B, L] -> [B, L, 1]: the same positions masked for every start
        end_logits = self.end_logits(expanded, start_states, None if p_mask is None else p_mask[..., None])
        end_probs = torch.softmax(end_logits, dim=1)  # [B, L, S]: over positions, for each start
        end_top, end_index = end_probs.topk(self.end_n_top, dim=1)  # [B, E, S]
        expected_start = torch.einsum("blh,bl->bh", hidden_states, start_probs)  # [B, H] the start vector's mean
        return XLNetQuestionAnsweringOutput(  # ends: [B, E, S] -> [B, E*S], as the reference returns them
            start_top_log_probs=start_top, start_top_index=start_index,
            end_top_log_probs=end_top.reshape(-1, self.start_n_top * self.end_n_top),
            end_top_index=end_index.reshape(-1, self.start_n_top * self.end_n_top),
            cls_logits=self.answer_class(hidden_states, expected_start, cls_index))


# ---- reading CMU's TensorFlow checkpoints (transformers 2.x's converter step) --------------------------------

def load_tf_weights_in_xlnet(model, config, tf_path):
    """Fill `model` (XLNetLMHeadModel, XLNetForSequenceClassification, XLNetForQuestionAnswering, XLNetModel)
    from a TensorFlow checkpoint of CMU's XLNet, read without TensorFlow (tf_checkpoint.xlnet_state_dict).
    Returns the model.

    tf_path: the prefix (`xlnet_model.ckpt`) or its .index. `config` is 2.x's argument; the model's own config
    is what counts, and a different one is an error. As for BERT (modeling_bert.load_tf_weights_in_bert), every
    parameter the model has must come from the checkpoint: a head the checkpoint lacks (a classifier or the
    SQuAD heads, from a pre-training checkpoint) is refused rather than saved with random values under trained
    names. Convert such a checkpoint as XLNetLMHeadModel and let from_pretrained start the new head.
    """
    from .modeling_utils import LoadingError
    from .tf_checkpoint import xlnet_state_dict
    if config is not None and config != model.config:
        raise LoadingError(f"load_tf_weights_in_xlnet: the config given differs from {type(model).__name__}'s own")
    load_converted_checkpoint(model, xlnet_state_dict(tf_path).state_dict, tf_path,
                              hint="; convert it as XLNetLMHeadModel (no --finetuning_task) and let "
                                   "from_pretrained start the new head")
    return model


# ---- re-initialization ------------------------------------------------------------------------------------

def xlnet_top_layer_selectors(config, num_layers, pooler=False):
    """Selectors for XLNet's top `num_layers` layers (`transformer.layer.{i}`) and, with pooler=True, its
    pooler's counterpart: the sequence summary's dense layer, which reads <cls> as BERT's pooler reads [CLS]."""
    return top_layer_selectors(config, num_layers, pooler, layer_prefix="transformer.layer",
                               pooler_name="sequence_summary")


def _demo():
    import argparse

    parser = argparse.ArgumentParser(description="Push token ids through XLNet and print each step's shape.")
    parser.add_argument("--model", help="a saved XLNet directory (default: a small random one)")
    args = parser.parse_args()
    if args.model:
        model = XLNetModel.from_pretrained(args.model)
    else:
        torch.manual_seed(0)
        model = XLNetModel(XLNetConfig(vocab_size=100, d_model=32, n_layer=2, n_head=4, d_inner=64)).eval()
    # Two texts, the shorter padded on the LEFT: pad=5, ... <sep>=4 <cls>=3 at the end of each row.
    input_ids = torch.tensor([[5, 5, 20, 21, 4, 3], [30, 31, 32, 33, 4, 3]])
    attention_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    token_type_ids = torch.tensor([[4, 4, 0, 0, 0, 2], [0, 0, 0, 0, 0, 2]])
    print("input_ids          ", list(input_ids.shape), "[B, L]")
    with torch.no_grad():
        hidden = model.word_embedding(input_ids)
        print("word_embedding     ", list(hidden.shape), "[B, L, H]")
        positions = relative_positional_encoding(input_ids.shape[1], model.config.d_model).expand(2, -1, -1)
        print("positions          ", list(positions.shape), "[B, R, H], R = 2L")
        other_segment = token_type_ids[:, :, None] != token_type_ids[:, None, :]
        bias = attention_bias_from_mask(attention_mask, hidden.dtype)
        print("attention_bias     ", list(bias.shape), "[B, 1, L, L]")
        for index, layer in enumerate(model.layer):
            hidden = layer(hidden, positions, other_segment, bias)
            print(f"layer.{index}            ", list(hidden.shape), "[B, L, H]")
        print("last token (<cls>) ", list(hidden[:, -1].shape), "[B, H]")


if __name__ == "__main__":
    _demo()
