"""XLNet against the reference (Hugging Face transformers): tokenizer, logits on left-padded batches, re-init,
and folders going both ways.

One module-scoped setup trains a small SentencePiece model on tweets (inside the test, with `sentencepiece`),
builds and saves our own small XLNet, then runs the oracle once. The oracle builds the reference's small XLNet
(fixed seed, every weight drawn N(0, 0.3) so that each term of the attention moves the logits), saves it, tokenizes
held-out tweets, computes logits on batches it padded on the LEFT, and reads the folder we saved.
"""
import json

import pytest
import torch
from safetensors.torch import load_file

from _families import fine_tune
from _support import read_tweets, run_oracle_json
from bert_read_step_to_step.features import InputFeatures, collate_features, padding_of
from transformers import BertForSequenceClassification, LoadingError
from transformers.configuration_xlnet import XLNetConfig
from transformers.modeling_utils import resolve_reinit_keys
from transformers.modeling_xlnet import (XLNetForSequenceClassification, XLNetModel, rel_shift,
                                         relative_positional_encoding, xlnet_top_layer_selectors)
from transformers.tokenization_xlnet import SEGMENT_PAD, XLNetTokenizer

TRAIN_TWEETS = 3000  # the SentencePiece model learns from these
TOKENIZER_TWEETS = 2500  # compared with the reference, none of them seen in training
MODEL_TWEETS = 48  # run through both models, in batches of BATCH
BATCH = 8
MAX_LENGTH = 40
# Pairs are truncated to 41 = 38 + <sep> <sep> <cls>: an even room for the two texts. With an odd room and both
# texts cut, the reference (the `tokenizers` library) gives the extra token to the longer text, while our
# `truncate_longest_first` (as transformers 2.x's Python tokenizers, and our BERT tokenizer) gives it to the first.
PAIR_MAX_LENGTH = 41
LOWER_TEXTS = 300  # also compared with do_lower_case=True
SMALL = dict(d_model=32, n_layer=3, n_head=4, d_inner=48, num_labels=3)

ORACLE = """
import json, torch
from transformers import XLNetConfig, XLNetForSequenceClassification, XLNetTokenizer

texts, pairs, model_texts = (json.load(open(name)) for name in ("texts.json", "pairs.json", "model_texts.json"))
out = {{}}
tokenizer = XLNetTokenizer.from_pretrained({spiece_dir!r})
out["padding_side"] = tokenizer.padding_side
single = [tokenizer(text, return_token_type_ids=True) for text in texts]
out["ids"] = [e["input_ids"] for e in single]
out["types"] = [e["token_type_ids"] for e in single]
paired = [tokenizer(a, b, truncation=True, max_length={pair_max_length}, return_token_type_ids=True) for a, b in pairs]
out["pair_ids"] = [e["input_ids"] for e in paired]
out["pair_types"] = [e["token_type_ids"] for e in paired]
lower = XLNetTokenizer.from_pretrained({spiece_dir!r}, do_lower_case=True)
out["lower_ids"] = [lower(text)["input_ids"] for text in texts[:{lower_texts}]]

def batches(model_tokenizer, model):
    rows = []
    for start in range(0, len(model_texts), {batch}):
        batch = model_tokenizer(model_texts[start:start + {batch}], padding=True, truncation=True,
                                max_length={max_length}, return_token_type_ids=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        rows.append({{"input_ids": batch["input_ids"].tolist(), "attention_mask": batch["attention_mask"].tolist(),
                      "token_type_ids": batch["token_type_ids"].tolist(), "logits": logits.tolist()}})
    return rows

torch.manual_seed(0)
config = XLNetConfig(vocab_size=tokenizer.vocab_size, **{small!r})
model = XLNetForSequenceClassification(config).eval()
with torch.no_grad():
    for parameter in model.parameters():
        parameter.normal_(0.0, 0.3)
model.save_pretrained("reference_model")
out["reference_batches"] = batches(tokenizer, model)

ours = XLNetForSequenceClassification.from_pretrained({ours_dir!r}).eval()
out["ours_batches"] = batches(XLNetTokenizer.from_pretrained({ours_dir!r}), ours)
trained = XLNetForSequenceClassification.from_pretrained({trained_dir!r}).eval()
out["trained_batches"] = batches(XLNetTokenizer.from_pretrained({trained_dir!r}), trained)
print(json.dumps(out))
"""


def pad_left(encodings, pad_token_id, pad_token_type_id=SEGMENT_PAD):
    """Encodings -> [B, L] tensors, padded on the LEFT to the longest, as the seed's xlnet_collate_fn does."""
    length = max(len(e["input_ids"]) for e in encodings)

    def padded(name, value):
        return torch.tensor([[value] * (length - len(e[name])) + e[name] for e in encodings])  # [B, L]
    return {"input_ids": padded("input_ids", pad_token_id), "attention_mask": padded("attention_mask", 0),
            "token_type_ids": padded("token_type_ids", pad_token_type_id)}


def randomized(model, seed=1, std=0.3):
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, std)
    return model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import sentencepiece
    tweets = [text for _, text in read_tweets()]
    spiece_dir = tmp_path_factory.mktemp("spiece")
    # XLNet's special pieces at XLNet's ids: <unk> 0, <s> 1, </s> 2, <cls> 3, <sep> 4, <pad> 5, <mask> 6, ...
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(tweets[:TRAIN_TWEETS]), model_prefix=str(spiece_dir / "spiece"), vocab_size=800,
        model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
        control_symbols=["<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"])
    held_out = tweets[TRAIN_TWEETS:]
    texts = held_out[:TOKENIZER_TWEETS]
    pairs = list(zip(held_out[:200], held_out[200:400]))
    model_texts = held_out[TOKENIZER_TWEETS:TOKENIZER_TWEETS + MODEL_TWEETS]
    tokenizer = XLNetTokenizer.from_pretrained(str(spiece_dir))

    # Our own small classifier, saved for the reference to read.
    ours_dir = tmp_path_factory.mktemp("ours")
    config = XLNetConfig(vocab_size=tokenizer.vocab_size, **SMALL)
    ours = randomized(XLNetForSequenceClassification(config)).eval()
    ours.save_pretrained(str(ours_dir))
    tokenizer.save_pretrained(str(ours_dir))

    # run_classifier.py --model_type xlnet fine-tunes it for a few steps; the reference then reads what it saved.
    trained, results, log, report = fine_tune("xlnet", ours_dir, tmp_path_factory.mktemp("run"),
                                              ["--reinit_layers", "1", "--reinit_pooler"])

    workdir = tmp_path_factory.mktemp("oracle")
    for name, value in (("texts", texts), ("pairs", pairs), ("model_texts", model_texts)):
        (workdir / f"{name}.json").write_text(json.dumps(value), encoding="utf-8")
    out = run_oracle_json(ORACLE.format(spiece_dir=str(spiece_dir), ours_dir=str(ours_dir), small=SMALL,
                                        trained_dir=str(trained),
                                        max_length=MAX_LENGTH, pair_max_length=PAIR_MAX_LENGTH, batch=BATCH,
                                        lower_texts=LOWER_TEXTS),
                          workdir)
    return dict(out, texts=texts, pairs=pairs, model_texts=model_texts, tokenizer=tokenizer, ours=ours,
                ours_dir=ours_dir, reference_dir=workdir / "reference_model", trained=trained, results=results,
                log=log, report=report)


# ---- tokenizer ------------------------------------------------------------------------------------------

def test_tokenizer_matches_reference_on_held_out_tweets(world):
    tokenizer = world["tokenizer"]
    assert len(world["texts"]) >= 2000
    ours = [tokenizer.encode_plus(text) for text in world["texts"]]
    mismatches = [text for text, e, ids in zip(world["texts"], ours, world["ids"]) if e["input_ids"] != ids]
    assert mismatches == []
    assert [e["token_type_ids"] for e in ours] == world["types"]
    # The shape of XLNet's layout, on real data: <sep> <cls> at the end, <cls> in segment 2.
    assert all(e["input_ids"][-2:] == [tokenizer.sep_token_id, tokenizer.cls_token_id] for e in ours)
    assert all(e["token_type_ids"][-1] == 2 for e in ours)
    # The test means something only if the tweets exercise unknown pieces and many pieces.
    assert sum(tokenizer.unk_token_id in e["input_ids"] for e in ours) > 0
    assert len({i for e in ours for i in e["input_ids"]}) > 500


def test_tokenizer_pairs_and_truncation_match_reference(world):
    tokenizer = world["tokenizer"]
    ours = [tokenizer.encode_plus(a, b, max_length=PAIR_MAX_LENGTH) for a, b in world["pairs"]]
    assert [e["input_ids"] for e in ours] == world["pair_ids"]
    assert [e["token_type_ids"] for e in ours] == world["pair_types"]
    # Truncation happened, in both kinds: only the longer text cut, and both texts cut.
    full = [tokenizer.encode_plus(a, b) for a, b in world["pairs"]]
    cut = [(f["token_type_ids"], e["token_type_ids"]) for f, e in zip(full, ours) if f != e]
    both = [1 for f, e in cut if f.count(0) > e.count(0) and f.count(1) > e.count(1)]
    assert len(both) > 5 and len(cut) > len(both)


def test_lower_casing_matches_reference(world):
    lower = XLNetTokenizer.from_pretrained(str(world["ours_dir"]), do_lower_case=True)
    texts = world["texts"][:LOWER_TEXTS]
    assert [lower.encode_plus(text)["input_ids"] for text in texts] == world["lower_ids"]
    assert world["lower_ids"] != world["ids"][:LOWER_TEXTS]  # lower-casing changed some ids


def test_special_tokens_in_text_are_kept_whole(world):
    tokenizer = world["tokenizer"]
    tokens = tokenizer.tokenize("good<mask>day </s> x")
    assert "<mask>" in tokens and "</s>" in tokens and "<s>" not in tokens


# ---- logits --------------------------------------------------------------------------------------------

def test_reference_pads_on_the_left(world):
    assert world["padding_side"] == "left"
    first = world["reference_batches"][0]
    lengths = [sum(row) for row in first["attention_mask"]]
    assert min(lengths) < max(lengths)  # the batch really is padded
    assert all(row[-1] == 1 for row in first["attention_mask"])


def test_logits_equal_reference_on_left_padded_batches(world):
    model, info = XLNetForSequenceClassification.from_pretrained(str(world["reference_dir"]),
                                                                 output_loading_info=True)
    assert info.missing_keys == [] and info.unexpected_keys == [] and info.mismatched_keys == []
    for batch in world["reference_batches"]:
        inputs = {name: torch.tensor(batch[name]) for name in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            logits = model(**inputs).logits
        expected = torch.tensor(batch["logits"])
        assert expected.abs().max() > 0.5  # logits that every term of the attention moves
        torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


def test_our_tokenizer_and_left_padding_give_reference_logits(world):
    """Our ids, padded on the left with our pad segment (4, the reference pads with 3): same logits."""
    model = XLNetForSequenceClassification.from_pretrained(str(world["reference_dir"]))
    tokenizer = world["tokenizer"]
    for start, batch in zip(range(0, MODEL_TWEETS, BATCH), world["reference_batches"]):
        encodings = tokenizer.batch_encode_plus(world["model_texts"][start:start + BATCH], max_length=MAX_LENGTH)
        inputs = pad_left(encodings, tokenizer.pad_token_id)
        assert inputs["input_ids"].tolist() == batch["input_ids"]
        with torch.no_grad():
            logits = model(**inputs).logits
        torch.testing.assert_close(logits, torch.tensor(batch["logits"]), rtol=0, atol=1e-5)


def test_left_padding_changes_no_row(world):
    """Each text alone, unpadded, scores as in its padded batch: what left padding is for."""
    model = XLNetForSequenceClassification.from_pretrained(str(world["reference_dir"]))
    batch = world["reference_batches"][0]
    with torch.no_grad():
        for row in range(BATCH):
            real = sum(batch["attention_mask"][row])
            alone = {name: torch.tensor([batch[name][row][-real:]]) for name in ("input_ids", "token_type_ids")}
            logits = model(**alone).logits[0]
            torch.testing.assert_close(logits, torch.tensor(batch["logits"][row]), rtol=0, atol=1e-5)


def test_our_saved_folder_gives_equal_logits_in_the_reference(world):
    ours = world["ours"]
    # The reference reads our saved tokenizer folder (spiece.model + tokenizer_config.json) as its own.
    assert [b["input_ids"] for b in world["ours_batches"]] == [b["input_ids"] for b in world["reference_batches"]]
    for batch in world["ours_batches"]:
        inputs = {name: torch.tensor(batch[name]) for name in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            logits = ours(**inputs).logits
        torch.testing.assert_close(logits, torch.tensor(batch["logits"]), rtol=0, atol=1e-5)
    saved = load_file(str(world["ours_dir"] / "model.safetensors"))
    assert "transformer.layer.0.rel_attn.r_w_bias" in saved and "sequence_summary.summary.weight" in saved


def test_run_classifier_trains_evaluates_saves_and_the_reference_reads_it(world):
    trained, log = world["trained"], world["log"]
    assert sorted(log.losses) == [1, 2, 3] and "acc" in world["results"]["final"]
    record = json.loads((trained / "reinit_keys.json").read_text())
    assert record["selectors"] == ["transformer.layer.2", "sequence_summary"]
    assert record["resolved_keys"] and all(key.startswith(("transformer.layer.2.", "sequence_summary."))
                                           for key in record["resolved_keys"])
    assert (trained / "spiece.model").is_file()
    ours = XLNetForSequenceClassification.from_pretrained(trained).eval()
    initial = load_file(str(world["ours_dir"] / "model.safetensors"))
    assert not torch.equal(ours.state_dict()["logits_proj.weight"], initial["logits_proj.weight"])  # it trained
    for batch in world["trained_batches"]:
        inputs = {name: torch.tensor(batch[name]) for name in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            logits = ours(**inputs).logits
        torch.testing.assert_close(logits, torch.tensor(batch["logits"]), rtol=0, atol=1e-5)


def test_run_classifier_batches_are_padded_on_the_left_as_the_reference_pads(world):
    """collate_features, given the XLNet tokenizer's Padding, builds the very batches the reference built."""
    tokenizer = world["tokenizer"]
    for batch in world["reference_batches"][:2]:
        # Each row without its padding, as our features hold it.
        features = []
        for ids, masks, types in zip(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]):
            kept = [position for position, mask in enumerate(masks) if mask]
            features.append(InputFeatures([ids[i] for i in kept], [1] * len(kept), [types[i] for i in kept], 0))
        collated = collate_features(features, padding=padding_of(tokenizer))
        assert collated["input_ids"].tolist() == batch["input_ids"]
        assert collated["attention_mask"].tolist() == batch["attention_mask"]
        # Token types agree on every real token. On padding we write the seed's segment id 4 where the reference
        # writes 0; padding is masked out of attention, so neither reaches the logits.
        for ours, reference, masks in zip(collated["token_type_ids"].tolist(), batch["token_type_ids"],
                                          batch["attention_mask"]):
            assert [t for t, m in zip(ours, masks) if m] == [t for t, m in zip(reference, masks) if m]
            assert [t for t, m in zip(ours, masks) if not m] == [SEGMENT_PAD] * (len(masks) - sum(masks))


def test_rel_shift_picks_the_distance_i_minus_j():
    length = 4
    distances = torch.arange(length, -length, -1)  # what row p of the encoding stands for: L - p
    scores = distances.expand(1, 1, length, 2 * length)  # [1, 1, L, R]: each score "is" its distance
    shifted = rel_shift(scores, length)[0, 0]  # [L, L]
    expected = torch.arange(length)[:, None] - torch.arange(length)[None, :]  # i - j
    assert torch.equal(shifted, expected)
    assert relative_positional_encoding(length, 8).shape == (2 * length, 8)


# ---- re-init -------------------------------------------------------------------------------------------

def test_reinit_changes_exactly_the_selected_tensors(world):
    folder = str(world["reference_dir"])
    checkpoint = load_file(str(world["reference_dir"] / "model.safetensors"))
    config = XLNetConfig.from_pretrained(folder)
    selectors = xlnet_top_layer_selectors(config, 1, pooler=True) + ["layer.0.rel_attn.r_s_bias"]
    assert selectors[:2] == ["transformer.layer.2", "sequence_summary"]
    model, info = XLNetForSequenceClassification.from_pretrained(folder, reinit_keys=selectors, reinit_seed=3,
                                                                 output_loading_info=True)
    expected = {key for key in checkpoint if key.startswith(("transformer.layer.2.", "sequence_summary."))}
    expected.add("transformer.layer.0.rel_attn.r_s_bias")
    assert set(info.reinit_keys) == expected
    assert {"transformer.layer.2.rel_attn.r_w_bias", "transformer.layer.2.rel_attn.seg_embed"} <= expected
    state = model.state_dict()
    for key, tensor in checkpoint.items():
        if key in expected:
            assert not torch.equal(state[key], tensor), key
        else:
            assert torch.equal(state[key], tensor), key
    # The init rule, on XLNet's own tensors: LayerNorm back to 1 and 0, biases 0, bare tensors N(0, 0.02).
    assert torch.equal(state["transformer.layer.2.ff.layer_norm.weight"], torch.ones(SMALL["d_model"]))
    assert torch.count_nonzero(state["transformer.layer.2.ff.layer_1.bias"]) == 0
    assert state["transformer.layer.2.rel_attn.q"].std() < 0.05  # was 0.3


def test_reinit_selectors_resolve_with_and_without_prefix(world):
    model = XLNetModel.from_pretrained(str(world["reference_dir"]))  # a bare model from a head checkpoint
    assert resolve_reinit_keys(model, ["transformer.layer.1.ff"]) == resolve_reinit_keys(model, ["layer.1.ff"])
    assert "mask_emb" in resolve_reinit_keys(model, ["mask_emb"])
    with pytest.raises(Exception, match="layer.9"):
        resolve_reinit_keys(model, ["layer.9"])


def test_new_model_is_initialized_by_the_rule_alone():
    """Every tensor, XLNet's bare ones included, gets a value from init_weights (none is left as allocated)."""
    torch.manual_seed(0)
    model = XLNetForSequenceClassification(XLNetConfig(vocab_size=400, **SMALL))
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter).all(), name
        if name.endswith(("rel_attn.q", "word_embedding.weight", "mask_emb", "seg_embed")):
            assert 0.01 < parameter.std() < 0.03, name  # N(0, initializer_range = 0.02)


# ---- config --------------------------------------------------------------------------------------------

def test_config_roundtrip_and_refusals(world, tmp_path):
    folder = world["reference_dir"]
    config = XLNetConfig.from_pretrained(str(folder))
    assert (config.d_model, config.n_layer, config.d_head, config.num_hidden_layers) == (32, 3, 8, 3)
    assert config.extra["mem_len"] == 512  # a pre-training setting, kept as read
    config.save_pretrained(str(tmp_path))
    assert XLNetConfig.from_pretrained(str(tmp_path)).to_dict() == config.to_dict()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "xlnet"
    with pytest.raises(LoadingError, match="model_type 'xlnet' is not a BERT architecture"):
        BertForSequenceClassification.from_pretrained(str(folder))
    values = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(values, attn_type="uni")))
    with pytest.raises(ValueError, match="config.json: attn_type 'uni' is not supported"):
        XLNetConfig.from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(dict(values, model_type="bert")))
    with pytest.raises(LoadingError, match="model_type 'bert' is not an XLNet architecture"):
        XLNetConfig.from_pretrained(str(tmp_path))
