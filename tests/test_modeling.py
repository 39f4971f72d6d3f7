"""Parity with the reference implementation (Hugging Face transformers) on the real MiniLM checkpoint,
and interoperability of saved models in both directions."""
import json

import pytest
import torch
from safetensors.torch import load_file

from _support import minilm_dir, read_reviews, read_tweets, run_oracle
from transformers import BertForSequenceClassification, BertModel

BATCH = 16
MAX_LENGTH = 64


def real_sentences():
    """60 tweets and 20 Chinese reviews, long and short, so batches carry real padding."""
    tweets = [text for _, text in read_tweets()[::500]][:60]
    reviews = [text for _, text in read_reviews()[::1500]][:20]
    return tweets + reviews


ORACLE = """
import json, torch
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, BertModel, BertTokenizerFast

model_dir, ours_saved = {model_dir!r}, {ours_saved!r}
sentences = json.load(open("sentences.json"))
tokenizer = BertTokenizerFast.from_pretrained(model_dir)
base = BertModel.from_pretrained(model_dir).eval()
torch.manual_seed(0)
head = BertForSequenceClassification.from_pretrained(model_dir, num_labels=3).eval()
head.save_pretrained("hf_saved")
ours = BertForSequenceClassification.from_pretrained(ours_saved).eval()

out = {{}}
for start in range(0, len(sentences), {batch}):
    batch = tokenizer(sentences[start:start + {batch}], padding=True, truncation=True,
                      max_length={max_length}, return_tensors="pt")
    with torch.no_grad():
        hidden = base(**batch)
        out[f"{{start}}.input_ids"] = batch["input_ids"]
        out[f"{{start}}.attention_mask"] = batch["attention_mask"]
        out[f"{{start}}.token_type_ids"] = batch["token_type_ids"]
        out[f"{{start}}.last_hidden_state"] = hidden.last_hidden_state
        out[f"{{start}}.pooler_output"] = hidden.pooler_output
        out[f"{{start}}.hf_head_logits"] = head(**batch).logits
        out[f"{{start}}.ours_saved_logits"] = ours(**batch).logits
save_file({{k: v.contiguous() for k, v in out.items()}}, "oracle.safetensors")
"""


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("oracle")
    sentences = real_sentences()
    (workdir / "sentences.json").write_text(json.dumps(sentences, ensure_ascii=False), encoding="utf-8")
    # Our side of the interop check: a classifier saved by our save_pretrained, for HF to load.
    torch.manual_seed(1)
    ours = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3,
                                                         reinit_keys=["bert.pooler"], reinit_seed=5)
    ours.save_pretrained(str(workdir / "ours_saved"))
    run_oracle(ORACLE.format(model_dir=str(minilm_dir()), ours_saved=str(workdir / "ours_saved"),
                             batch=BATCH, max_length=MAX_LENGTH), workdir)
    results = load_file(str(workdir / "oracle.safetensors"))
    batches = sorted({int(key.split(".")[0]) for key in results})
    return {"dir": workdir, "ours": ours, "sentences": sentences,
            "batches": [{name.split(".", 1)[1]: t for name, t in results.items() if name.startswith(f"{b}.")}
                        for b in batches]}


def test_oracle_batches_are_real_and_padded(oracle):
    assert len(oracle["sentences"]) >= 50
    masks = [b["attention_mask"] for b in oracle["batches"]]
    assert sum(int((m == 0).sum()) for m in masks) > 100  # padding positions really occur
    assert sum(m.shape[0] for m in masks) == len(oracle["sentences"])


def test_bert_model_matches_reference(oracle):
    model = BertModel.from_pretrained(str(minilm_dir()))
    for batch in oracle["batches"]:
        with torch.no_grad():
            out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        real = batch["attention_mask"].bool()
        # Padding positions carry no meaning (and no loss); compare the real tokens.
        diff = (out.last_hidden_state - batch["last_hidden_state"])[real].abs().max().item()
        assert diff <= 1e-5
        assert (out.pooler_output - batch["pooler_output"]).abs().max().item() <= 1e-5


def test_hf_saved_classifier_loads_in_ours_with_same_logits(oracle):
    model, info = BertForSequenceClassification.from_pretrained(str(oracle["dir"] / "hf_saved"),
                                                                output_loading_info=True)
    assert info.missing_keys == [] and info.unexpected_keys == []
    assert model.config.num_labels == 3
    for batch in oracle["batches"]:
        with torch.no_grad():
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
        assert (logits - batch["hf_head_logits"]).abs().max().item() <= 1e-5


def test_our_saved_classifier_loads_in_hf_with_same_logits(oracle):
    ours = oracle["ours"].eval()
    for batch in oracle["batches"]:
        with torch.no_grad():
            logits = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
        assert (logits - batch["ours_saved_logits"]).abs().max().item() <= 1e-5


def test_classifier_loss_and_regression():
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)
    ids = torch.tensor([[101, 2023, 2003, 102], [101, 2307, 102, 0]])
    mask = (ids != 0).long()
    out = model(ids, mask, labels=torch.tensor([0, 2]))
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2]))
    assert torch.allclose(out.loss, expected)
    assert model(ids, mask).loss is None

    regressor = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=1)
    out = regressor(ids, mask, labels=torch.tensor([0.5, 4.0]))
    assert out.logits.shape == (2, 1)
    assert torch.allclose(out.loss, ((out.logits.squeeze(-1) - torch.tensor([0.5, 4.0])) ** 2).mean())


def test_classifier_computes_only_cls_in_last_layer_with_the_same_result():
    """The classifier's last layer runs its feed-forward block on the [CLS] row alone (first_token_only), and
    the logits, the loss and every parameter's gradient equal those of the full computation."""
    from transformers import BertTokenizer
    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()))
    texts = [text for _, text in read_tweets()[:6]]
    encoded = [tokenizer.encode_plus(text, max_length=MAX_LENGTH) for text in texts]
    length = max(len(e["input_ids"]) for e in encoded)
    ids = torch.tensor([e["input_ids"] + [0] * (length - len(e["input_ids"])) for e in encoded])
    mask = (ids != 0).long()
    assert (mask == 0).any(), "the batch must carry padding"
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(3)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).eval()

    rows_seen = []
    hook = model.bert.encoder.layer[-1].intermediate.dense.register_forward_hook(
        lambda module, args, out: rows_seen.append(args[0].shape[1]))
    fast = model(ids, mask, labels=labels)
    fast.loss.backward()
    fast_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    hook.remove()
    assert rows_seen == [1]  # the last layer's feed-forward block saw one row, not L

    model.zero_grad()
    full_sequence = model.bert(ids, mask).last_hidden_state  # [B, L, H], every row of the last layer
    assert full_sequence.shape[1] == length
    logits = model.classifier(model.bert.pooler(full_sequence))
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    assert (fast.logits - logits).abs().max().item() <= 1e-5
    assert abs(fast.loss.item() - loss.item()) <= 1e-6
    for name, p in model.named_parameters():
        scale = p.grad.abs().max().item()
        assert (fast_grads[name] - p.grad).abs().max().item() <= 1e-5 * max(scale, 1e-3), name
    short = model.bert(ids, mask, first_token_only=True).last_hidden_state  # [B, 1, H]
    assert short.shape == (len(texts), 1, full_sequence.shape[2])
    assert (short[:, 0] - full_sequence[:, 0]).abs().max().item() <= 1e-5


def test_attention_with_dropout_keeps_each_probability_with_chance_1_minus_p_scaled_up():
    """Training on CPU uses attention_with_dropout (faster mask than SDPA's). With value = the identity, its
    output is the dropped-out probabilities themselves: each is 0 or exactly prob / (1 - p), about a
    fraction p are 0, and without dropout it equals the fused SDPA call."""
    import math
    from transformers.modeling_bert import attention_bias_from_mask, attention_with_dropout
    generator = torch.Generator().manual_seed(0)
    batch, heads, length = 4, 3, 64
    query = torch.randn(batch, heads, length, length, generator=generator)  # D = L, so value can be eye
    key = torch.randn(batch, heads, length, length, generator=generator)
    value = torch.eye(length).expand(batch, heads, length, length)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 40:] = 0  # padding: those keys get probability 0 and stay 0
    bias = attention_bias_from_mask(mask, torch.float32)  # [B, 1, 1, L]
    probs = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(length) + bias, dim=-1)

    fused = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=bias)
    assert (attention_with_dropout(query, key, value, bias, 0.0) - fused).abs().max().item() <= 1e-5
    assert (fused - probs).abs().max().item() <= 1e-5

    p = 0.25
    torch.manual_seed(1)
    dropped = attention_with_dropout(query, key, value, bias, p)
    real = probs > 0
    zeroed = (dropped == 0) & real
    fraction = zeroed.sum().item() / real.sum().item()
    assert abs(fraction - p) < 0.01, fraction  # ~63k real entries: the std of the fraction is ~0.002
    kept = real & ~zeroed
    assert torch.allclose(dropped[kept], probs[kept] / (1 - p), rtol=1e-5, atol=1e-7)
    assert (dropped[~real] == 0).all()


def test_training_forward_uses_attention_with_dropout_in_every_layer(monkeypatch):
    """In training on CPU every layer takes the written-out path (the last with one query row), gradients
    reach the first layer through it, and evaluation never takes it."""
    import transformers.modeling_bert as modeling_bert
    calls = []
    original = modeling_bert.attention_with_dropout

    def counted(query, key, value, attention_bias, dropout_prob):
        calls.append((tuple(query.shape), dropout_prob))
        return original(query, key, value, attention_bias, dropout_prob)

    monkeypatch.setattr(modeling_bert, "attention_with_dropout", counted)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2023, 2003, 1037, 102]])
    out = model.train()(ids, (ids != 0).long(), labels=torch.tensor([0, 2]))
    out.loss.backward()
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    rows = [5] * (layers - 1) + [1]  # the classifier's last layer asks from the [CLS] row alone
    assert [shape[2] for shape, _ in calls] == rows
    assert {prob for _, prob in calls} == {model.config.attention_probs_dropout_prob}
    assert all(shape[1] == heads for shape, _ in calls)
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    calls.clear()
    with torch.no_grad():
        model.eval()(ids, (ids != 0).long())
    assert calls == []  # evaluation runs the fused call


def test_padding_does_not_change_real_tokens():
    """The additive mask must make padded positions invisible: the same sentence alone and padded agree."""
    model = BertModel.from_pretrained(str(minilm_dir()))
    ids = torch.tensor([[101, 7592, 2088, 102]])
    padded = torch.tensor([[101, 7592, 2088, 102, 0, 0, 0]])
    with torch.no_grad():
        alone = model(ids).last_hidden_state
        with_pad = model(padded, (padded != 0).long()).last_hidden_state[:, :4]
    assert (alone - with_pad).abs().max().item() < 1e-5


def test_keep_mask_keeps_at_the_rounded_rate_independently_across_positions_and_draws():
    """keep_mask (16 random bits per entry, four entries per 64-bit draw): the drop rate is
    round(p * 65536) / 65536 within 5 standard errors, neighbours (in the same 64-bit word and across words)
    and consecutive draws are uncorrelated, and the same seed gives the same mask."""
    from transformers.modeling_bert import keep_mask
    p, shape = 0.1, (256, 4096)  # 1M entries: the std of the rate is 3e-4, of a correlation 1e-3
    torch.manual_seed(7)
    first = keep_mask(shape, p, "cpu")
    second = keep_mask(shape, p, "cpu")
    assert first.dtype == torch.bool and first.shape == shape
    n = first.numel()
    expected = round(p * 65536) / 65536
    rate = 1.0 - first.float().mean().item()
    assert abs(rate - expected) < 5 * (expected * (1 - expected) / n) ** 0.5, rate

    def correlation(a, b):
        a, b = a.float().flatten(), b.float().flatten()
        a, b = a - a.mean(), b - b.mean()
        return ((a * b).mean() / (a.std() * b.std())).item()

    flat = first.flatten()
    for offset in (1, 2, 3, 4, 5):  # 1-3 share a 64-bit word with some neighbours, 4 and 5 never
        assert abs(correlation(flat[:-offset], flat[offset:])) < 5 / n ** 0.5, offset
    assert abs(correlation(first, second)) < 5 / n ** 0.5  # step to step
    torch.manual_seed(7)
    assert torch.equal(keep_mask(shape, p, "cpu"), first)  # --seed fixes the masks
    assert not torch.equal(second, first)


def test_dropout_keeps_the_expected_activation_and_matches_its_fused_residual_form():
    """Dropout zeroes a fraction p and scales the rest by exactly 1 / (1 - p), so the mean activation
    stays where it was; dropout_add(x, r) is r + dropout(x) with the same mask; eval and p = 0 change nothing."""
    from transformers.modeling_bert import dropout, dropout_add
    p = 0.25
    x = torch.rand(64, 128, 384) + 0.5  # positive, so a zero can only come from the mask
    torch.manual_seed(3)
    out = dropout(x, p, True)
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)
    ratio = (out.sum() / x.sum()).item()
    assert abs(ratio - 1.0) < 0.005, ratio  # ~3M entries: the std of the ratio is ~4e-4
    residual = torch.randn_like(x)
    torch.manual_seed(3)
    fused = dropout_add(x, residual, p, True)
    assert torch.allclose(fused, residual + out, rtol=1e-6, atol=1e-6)
    assert dropout(x, p, False) is x and dropout(x, 0.0, True) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))


def test_keep_mask_in_the_callers_dtype_is_the_same_draw_as_the_bool_mask():
    """keep_mask writes its 0/1 straight in the dtype asked for; the random draws are the same, so a seed gives
    the same masks in bool, fp32 and bf16 (and resumed runs stay exact whatever the precision)."""
    from transformers.modeling_bert import keep_mask
    shape = (3, 5, 7, 11)  # 1155 entries: not a multiple of four, the last word is cut
    masks = {}
    for dtype in (torch.bool, torch.float32, torch.bfloat16):
        torch.manual_seed(11)
        masks[dtype] = keep_mask(shape, 0.3, "cpu", dtype)
        assert masks[dtype].dtype == dtype and masks[dtype].shape == shape
    assert torch.equal(masks[torch.float32], masks[torch.bool].float())
    assert torch.equal(masks[torch.bfloat16], masks[torch.bool].to(torch.bfloat16))
    assert 0 < masks[torch.bool].sum().item() < masks[torch.bool].numel()


def test_attention_without_padding_skips_the_bias_and_computes_the_same():
    """A batch with no padding gets no bias (None); attention_with_dropout then computes what it computes
    with a bias of zeros, with and without dropout (same seed: same mask)."""
    from transformers.modeling_bert import attention_bias_from_mask, attention_with_dropout
    assert attention_bias_from_mask(torch.ones(2, 6, dtype=torch.long), torch.float32) is None
    padded = attention_bias_from_mask(torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6]), torch.float32)
    assert padded.shape == (2, 1, 1, 6) and padded[0, 0, 0, 3].item() == torch.finfo(torch.float32).min
    generator = torch.Generator().manual_seed(2)
    query, key, value = (torch.randn(2, 3, 6, 8, generator=generator) for _ in range(3))
    zeros = torch.zeros(2, 1, 1, 6)
    for p in (0.0, 0.4):
        torch.manual_seed(4)
        without = attention_with_dropout(query, key, value, None, p)
        torch.manual_seed(4)
        with_zeros = attention_with_dropout(query, key, value, zeros, p)
        assert (without - with_zeros).abs().max().item() <= 1e-6, p


def training_grads(model, ids, mask, labels):
    """Loss and every parameter's gradient of one training forward and backward, masks from seed 9."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(9)
    loss = model(ids, mask, labels=labels).loss
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_fused_query_key_value_projections_give_the_same_loss_and_gradients(monkeypatch):
    """In training the query, key and value projections run as one matmul against their stacked weights
    ([2H, H] for key and value in the classifier's [CLS]-only last layer). The loss and every gradient equal
    those of the three separate projections; the three parameters keep their names."""
    import torch.nn.functional as F
    from transformers.modeling_bert import BertSelfAttention
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).train()
    ids = torch.tensor([[101, 7592, 2088, 2003, 102, 0], [101, 2023, 2003, 1037, 3231, 102]])
    mask, labels = (ids != 0).long(), torch.tensor([0, 2])
    hidden = model.config.hidden_size
    widths, plain_linear = [], F.linear

    def recorded(input, weight, bias=None):
        widths.append(weight.shape[0])
        return plain_linear(input, weight, bias)

    monkeypatch.setattr(F, "linear", recorded)
    fused_loss, fused_grads = training_grads(model, ids, mask, labels)
    layers = model.config.num_hidden_layers
    assert widths.count(3 * hidden) == layers - 1 and widths.count(2 * hidden) == 1

    def separate(self, queries_from, hidden_states):
        return self.query(queries_from), self.key(hidden_states), self.value(hidden_states)

    monkeypatch.setattr(BertSelfAttention, "project", separate)
    loss, grads = training_grads(model, ids, mask, labels)
    assert abs(loss - fused_loss) <= 1e-5
    assert grads.keys() == fused_grads.keys()
    assert "bert.encoder.layer.0.attention.self.key.weight" in grads
    for name, grad in grads.items():
        scale = max(grad.abs().max().item(), 1e-3)
        assert (fused_grads[name] - grad).abs().max().item() <= 1e-5 * scale, name


def test_inference_linear_matches_f_linear_and_serves_only_without_gradients(monkeypatch):
    """modeling_utils.inference_linear (oneDNN: bias, and GELU, applied as the matmul writes) equals F.linear
    (then F.gelu) on 3-D and non-contiguous inputs, in fp32 and under bf16 autocast; with gradients on it
    steps aside. A whole model in eval gives the same output with it and without it."""
    import torch.nn.functional as F
    from transformers import modeling_utils
    from transformers.modeling_utils import inference_linear
    if modeling_utils.ONEDNN_LINEAR is None:
        pytest.fail("this PyTorch has no oneDNN linear op; the fast inference path is untested here")
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(4, 9, 32, generator=generator)
    weight, bias = torch.randn(48, 32, generator=generator) * 0.2, torch.randn(48, generator=generator)
    with torch.no_grad():
        for input in (x, x[:, :1], x[:, 0]):  # [B, L, H], the [CLS] rows as a strided view, [B, H]
            assert (inference_linear(input, weight, bias) - F.linear(input, weight, bias)).abs().max() <= 1e-5
            expected = F.gelu(F.linear(input, weight, bias))
            assert (inference_linear(input, weight, bias, "gelu") - expected).abs().max() <= 1e-5
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast, plain = inference_linear(x, weight, bias), F.linear(x, weight, bias)
        if modeling_utils.ONEDNN_BF16:
            assert fast.dtype == plain.dtype == torch.bfloat16
            assert (fast.float() - plain.float()).abs().max() <= 0.05  # bf16: 8 significant bits, values up to ~8
        else:  # a CPU without bf16 (AVX2 only): oneDNN refuses bf16, so bf16 takes the plain path
            assert fast is None and plain.dtype == torch.bfloat16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            # autocast leaves float64 alone, and an fp32 residual makes `residual + output` an fp32 sum:
            # neither may come back rounded to bf16, so both take the plain path.
            assert inference_linear(x.double(), weight.double(), bias.double()) is None
            assert inference_linear(x, weight, bias, residual=torch.zeros(4, 9, 48)) is None
            bf16_residual = torch.zeros(4, 9, 48, dtype=torch.bfloat16)
            served = inference_linear(x, weight, bias, residual=bf16_residual)
            assert (served.dtype == torch.bfloat16) if modeling_utils.ONEDNN_BF16 else served is None
    residual = torch.randn(4, 9, 48, generator=generator)
    with torch.no_grad():
        fast = inference_linear(x, weight, bias, residual=residual)
    assert (fast - (residual + F.linear(x, weight, bias))).abs().max() <= 1e-5
    assert inference_linear(x, weight, bias) is None  # gradients recorded: the caller uses F.linear
    with torch.no_grad():
        monkeypatch.setattr(modeling_utils, "ONEDNN_BF16", False)  # a CPU where oneDNN refuses bf16
        assert inference_linear(x.bfloat16(), weight.bfloat16(), bias.bfloat16()) is None
        assert inference_linear(x, weight, bias) is not None  # fp32 still goes through oneDNN
        monkeypatch.undo()

    model = BertModel.from_pretrained(str(minilm_dir())).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 102, 0], [101, 2023, 2003, 1037, 3231, 102]])
    with torch.no_grad():
        fast = model(ids, (ids != 0).long()).last_hidden_state
        monkeypatch.setattr(modeling_utils, "ONEDNN_LINEAR", None)
        plain = model(ids, (ids != 0).long()).last_hidden_state
    real = ids != 0  # padding positions carry no meaning; the reference tests compare real tokens too
    assert (fast - plain)[real].abs().max().item() <= 1e-5


def test_one_query_row_in_evaluation_skips_the_token_keys_and_values_with_the_same_result(monkeypatch):
    """In evaluation the classifier's last layer attends from [CLS] without computing keys and values for
    every token (BertSelfAttention.attend_from_one_row: W_k^T q against the inputs, W_v after the weighted
    sum). Its output equals the general path's on real, padded batches, and the key and value layers of that
    layer are then never called on the L tokens."""
    from transformers.modeling_bert import BertSelfAttention, attention_bias_from_mask
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3).eval()
    ids = torch.tensor([[101, 7592, 2088, 2003, 102, 0, 0], [101, 2023, 2003, 1037, 3231, 2204, 102]])
    mask = (ids != 0).long()
    last = model.bert.encoder.layer[-1].attention.self
    with torch.no_grad():
        hidden = model.bert.embeddings(ids, torch.zeros_like(ids))
        for layer in model.bert.encoder.layer[:-1]:
            hidden = layer(hidden, attention_bias_from_mask(mask, hidden.dtype))
        bias = attention_bias_from_mask(mask, hidden.dtype)
        short = last(hidden[:, :1], hidden, bias)
        general = last(hidden, hidden, bias)[:, :1]  # every row, then the [CLS] one
        assert (short - general).abs().max().item() <= 1e-5
        key_rows = []
        monkeypatch.setattr(last.key, "forward", lambda x: key_rows.append(x.shape[1]) or x)
        last(hidden[:, :1], hidden, bias)
    assert key_rows == []  # attend_from_one_row never computed keys

    calls = []
    original = BertSelfAttention.attend_from_one_row
    monkeypatch.setattr(BertSelfAttention, "attend_from_one_row",
                        lambda self, *args: calls.append(1) or original(self, *args))
    model.train()
    model(ids, mask, labels=torch.tensor([0, 1])).loss.backward()
    assert calls == []  # training (dropout, gradients) keeps the general path
