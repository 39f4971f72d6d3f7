"""The transformers 2.x surface (compat_2x.py, optimization.py, auto.py, the pre-training heads): a 2.x-style
fine-tuning script runs unchanged, and where 2.x behaviour survives in Hugging Face transformers, the oracle
agrees with us."""
import glob
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from _support import REPO_ROOT, minilm_dir, read_tweets, run_oracle_json
from transformers import (CONFIG_NAME, WEIGHTS_NAME, AdamW, AutoConfig, AutoModel, BertConfig, BertForMaskedLM,
                          BertForPreTraining, BertForSequenceClassification, BertModel, BertTokenizer,
                          ConstantLRSchedule, WarmupConstantSchedule, WarmupCosineSchedule,
                          WarmupCosineWithHardRestartsSchedule, WarmupLinearSchedule, load_tf_weights_in_bert)
from transformers.compat_2x import Unsupported2xArgument, truncate_sequences
from transformers.configuration_bert import LoadingError
from transformers.file_utils import BadValueError
from transformers.tf_checkpoint import TFCheckpoint

TF_TINY = REPO_ROOT / "tests" / "fixtures" / "tf_bert_tiny"


def shuffled_tweets(count, seed=0):
    import random
    rows = read_tweets()
    random.Random(seed).shuffle(rows)
    return rows[:count]


# ---- the 2.x-style script ------------------------------------------------------------------------------------

def test_two_x_script_trains_saves_reloads_and_finds_checkpoints(tmp_path):
    data = tmp_path / "tweets.tsv"
    data.write_text("".join(f"{label}\t{text}\n" for label, text in shuffled_tweets(40)), encoding="utf-8")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "two_x_fine_tuning.py"),
                           "--model_name_or_path", str(minilm_dir()), "--data_file", str(data),
                           "--output_dir", str(out), "--save_steps", "3"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # pretrained_config_archive_map: 2.x's shortcut names, which its scripts list in --help.
    assert {"bert-base-uncased", "bert-base-chinese", "xlnet-base-cased", "roberta-base"} <= set(result["all_models"])
    # 40 tweets, batch 8, 2 epochs: 10 steps, checkpoints at 3, 6 and 9, plus the final save in out/ itself.
    assert result["t_total"] == 10
    assert sorted(os.path.basename(c) for c in result["checkpoints"]) == \
        sorted(["checkpoint-3", "checkpoint-6", "checkpoint-9", "out"])
    assert set(result["checkpoint_acc"]) == {"checkpoint-3", "checkpoint-6", "checkpoint-9", "out"}
    # WarmupLinearSchedule(warmup 1, t_total 10): after step s the lr is 5e-5 * (10 - s) / 9.
    expected = [5e-5 * (10 - step) / 9 for step in range(1, 11)]
    assert result["lrs"] == pytest.approx(expected, rel=1e-9)
    final = torch.tensor(result["final"]["logits"])
    for other in ("reloaded", "from_pickle"):
        assert torch.allclose(torch.tensor(result[other]["logits"]), final, atol=1e-5), other
    assert torch.allclose(torch.tensor(result["auto_logits"]), final, atol=1e-5)
    assert result["auto"] == ["BertConfig", "BertForSequenceClassification", "BertTokenizer"]
    assert result["final"]["loss"] < 1.2  # trained: three classes start near ln 3 = 1.1
    assert sorted(os.listdir(out / "checkpoint-3")) == ["config.json", "model.safetensors", "training_args.bin",
                                                        "vocab.txt"]


# ---- WEIGHTS_NAME --------------------------------------------------------------------------------------------

def tiny_config(**overrides):
    return BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32, **overrides)


def test_weights_name_is_what_save_pretrained_writes_and_a_pickle_under_it_loads(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config())
    model.save_pretrained(tmp_path / "saved")
    assert glob.glob(str(tmp_path / "**" / WEIGHTS_NAME), recursive=True) == [str(tmp_path / "saved" / WEIGHTS_NAME)]
    # 2.x's other habit: torch.save(state_dict) to WEIGHTS_NAME. The bytes say pickle; it loads with weights_only.
    (tmp_path / "pickled").mkdir()
    torch.save(model.state_dict(), tmp_path / "pickled" / WEIGHTS_NAME)
    model.config.to_json_file(str(tmp_path / "pickled" / CONFIG_NAME))
    loaded = BertForSequenceClassification.from_pretrained(tmp_path / "pickled")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert loaded.loading_info.missing_keys == []


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_pickle_under_weights_name_is_still_loaded_safely(tmp_path):
    BertModel(tiny_config()).config.to_json_file(str(tmp_path / CONFIG_NAME))
    torch.save({"pooler.dense.bias": Payload()}, tmp_path / WEIGHTS_NAME)
    with pytest.raises(LoadingError, match="refused to unpickle"):
        BertModel.from_pretrained(tmp_path)


# ---- from_pretrained's 2.x arguments ----------------------------------------------------------------------------

def test_from_pretrained_takes_2x_arguments(tmp_path):
    config = BertConfig.from_pretrained(minilm_dir(), num_labels=3, finetuning_task="tnews")
    model, info = BertForSequenceClassification.from_pretrained(
        minilm_dir(), from_tf=False, config=config, cache_dir=str(tmp_path), output_loading_info=True,
        proxies=None, resume_download=False)
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"] and model.config.finetuning_task == "tnews"
    same = BertForSequenceClassification.from_pretrained(None, config=config, state_dict=model.state_dict())
    assert torch.equal(same.classifier.weight, model.classifier.weight)
    with pytest.raises(Unsupported2xArgument, match="from_tf=True.*no TensorFlow checkpoint"):
        BertModel.from_pretrained(minilm_dir(), from_tf=True)
    with pytest.raises(Unsupported2xArgument, match="proxies"):
        BertModel.from_pretrained(minilm_dir(), proxies={"https": "http://proxy:3128"})
    # 2.x's from_tf=True took the checkpoint's prefix.
    from_prefix = BertModel.from_pretrained(str(TF_TINY / "bert_model.ckpt"), from_tf=True)
    from_folder = BertModel.from_pretrained(TF_TINY)
    assert torch.equal(from_prefix.pooler.dense.weight, from_folder.pooler.dense.weight)


# ---- outputs as 2.x tuples, hidden states --------------------------------------------------------------------

def test_hidden_states_match_the_oracle_and_come_last_in_the_tuple(tmp_path):
    sentence = "the unaffable text about stocks"
    tokenizer = BertTokenizer.from_pretrained(minilm_dir())
    encoded = tokenizer.encode_plus(sentence, return_tensors="pt", add_special_tokens=True)
    config = BertConfig.from_pretrained(minilm_dir(), output_hidden_states=True, num_labels=3)
    model = BertModel.from_pretrained(minilm_dir(), config=config)
    with torch.no_grad():
        # 2.x's tuple order, by position (unpacking the output object itself gives its field names: a Mapping).
        sequence, pooled, states = model(encoded["input_ids"], encoded["attention_mask"],
                                         encoded["token_type_ids"])[:3]
    assert len(states) == config.num_hidden_layers + 1 and torch.equal(states[-1], sequence)
    oracle = run_oracle_json(f"""
        import json, torch
        from transformers import BertModel
        model = BertModel.from_pretrained({str(minilm_dir())!r}, output_hidden_states=True).eval()
        with torch.no_grad():
            out = model(torch.tensor({encoded["input_ids"].tolist()}))
        print(json.dumps([s[0].tolist() for s in out.hidden_states]))
    """, tmp_path)
    for ours, theirs in zip(states, oracle, strict=True):
        assert torch.allclose(ours[0], torch.tensor(theirs), atol=1e-4)
    # The classifier: (loss), logits, hidden states, as 2.x; the last layer runs in full to give them.
    classifier = BertForSequenceClassification.from_pretrained(minilm_dir(), config=config)
    with torch.no_grad():
        outputs = classifier(encoded["input_ids"], labels=torch.tensor([1]))
    assert len(outputs) == 3 and outputs[1].shape == (1, 3) and outputs[2][-1].shape == sequence.shape
    with pytest.raises(Unsupported2xArgument, match="output_attentions"):
        BertForMaskedLM.from_pretrained(minilm_dir(), output_attentions=True)


def test_attentions_match_the_oracle_and_come_after_the_hidden_states(tmp_path):
    tokenizer = BertTokenizer.from_pretrained(minilm_dir())
    # A pair with two padding positions after it: their probabilities must be 0, as the reference's.
    first = tokenizer.encode_plus("the unaffable text about stocks", "short one", add_special_tokens=True,
                                  return_tensors="pt")
    ids, types = first["input_ids"], first["token_type_ids"]
    ids = torch.cat([ids, torch.zeros(1, 2, dtype=ids.dtype)], dim=1)  # two padding positions
    types = torch.cat([types, torch.zeros(1, 2, dtype=types.dtype)], dim=1)
    mask = (torch.arange(ids.shape[1]) < first["input_ids"].shape[1]).long()[None]
    config = BertConfig.from_pretrained(minilm_dir(), output_hidden_states=True, output_attentions=True,
                                        num_labels=3)
    model = BertModel.from_pretrained(minilm_dir(), config=config).eval()
    with torch.no_grad():
        sequence, pooled, states, attentions = model(ids, mask, types)[:4]
    assert len(attentions) == config.num_hidden_layers and len(states) == config.num_hidden_layers + 1
    assert attentions[0].shape == (1, config.num_attention_heads, ids.shape[1], ids.shape[1])
    oracle = run_oracle_json(f"""
        import json, torch
        from transformers import BertModel
        model = BertModel.from_pretrained({str(minilm_dir())!r}, attn_implementation="eager").eval()
        with torch.no_grad():
            out = model(torch.tensor({ids.tolist()}), attention_mask=torch.tensor({mask.tolist()}),
                        token_type_ids=torch.tensor({types.tolist()}), output_attentions=True)
        print(json.dumps([a[0].tolist() for a in out.attentions]))
    """, tmp_path)
    for ours, theirs in zip(attentions, oracle, strict=True):
        assert torch.allclose(ours[0], torch.tensor(theirs), atol=1e-5)
    assert float(attentions[-1][0, :, :, -2:].abs().max()) == 0.0  # no query attends to padding
    # The classifier: logits, hidden states, attentions (2.x's order); its logits as without the switches.
    plain = BertForSequenceClassification.from_pretrained(minilm_dir(), num_labels=3).eval()
    switched = BertForSequenceClassification.from_pretrained(minilm_dir(), config=config).eval()
    switched.load_state_dict(plain.state_dict())
    with torch.no_grad():
        outputs, reference = switched(ids, mask, types), plain(ids, mask, types)
    assert len(outputs) == 3 and len(outputs[2]) == config.num_hidden_layers
    assert torch.allclose(outputs[0], reference.logits, atol=1e-6) and reference.attentions is None


# ---- tokenizer -------------------------------------------------------------------------------------------------

def encode_cases():
    rows = [text for _, text in shuffled_tweets(12, seed=1)]
    return [(rows[i], rows[i + 1]) for i in range(0, 12, 2)]


def test_encode_plus_truncation_matches_the_oracle_where_2x_survives(tmp_path):
    tokenizer = BertTokenizer.from_pretrained(minilm_dir())
    pairs, lengths = encode_cases(), (9, 10, 16, 17, 24, 25, 40)
    oracle = run_oracle_json(f"""
        import json
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(minilm_dir())!r})
        out = []
        for a, b in {pairs!r}:
            for n in {lengths!r}:
                for strategy in ("longest_first", "only_first", "only_second"):
                    try:
                        e = tok(a, b, truncation=strategy, max_length=n, padding="max_length")
                        out.append([e["input_ids"], e["token_type_ids"], e["attention_mask"]])
                    except Exception:
                        out.append(None)
                e = tok(a, truncation=True, max_length=n)
                out.append([e["input_ids"], e["token_type_ids"], e["attention_mask"]])
        print(json.dumps(out))
    """, tmp_path)
    results, compared, odd = iter(oracle), 0, 0
    for a, b in pairs:
        len_a, len_b = len(tokenizer.tokenize(a)), len(tokenizer.tokenize(b))
        for n in lengths:
            for strategy in ("longest_first", "only_first", "only_second"):
                theirs = next(results)
                try:
                    ours = tokenizer.encode_plus(a, b, add_special_tokens=True, max_length=n,
                                                 truncation_strategy=strategy, pad_to_max_length=True)
                except BadValueError:
                    # 2.x refused to cut a text to nothing (or below); so does transformers 5.
                    cut = len_b if strategy == "only_second" else len_a
                    assert strategy != "longest_first" and cut <= len_a + len_b + 3 - n and theirs is None
                    continue
                room = n - 3
                both_cut = strategy == "longest_first" and 2 * min(len_a, len_b) > room and len_a + len_b > room
                if both_cut and room % 2 and len_a <= len_b:
                    # 2.x cut one token at a time, the pair on a tie: the first text keeps the odd token.
                    # transformers 5's Rust tokenizer gives it to the longer text, so here they differ.
                    assert ours["token_type_ids"].count(0) - 2 == room // 2 + 1  # [CLS] a [SEP] are type 0
                    odd += 1
                    continue
                assert [ours["input_ids"], ours["token_type_ids"], ours["attention_mask"]] == theirs, (a, b, n)
                compared += 1
            single = tokenizer.encode_plus(a, add_special_tokens=True, max_length=n)
            assert [single["input_ids"], single["token_type_ids"], single["attention_mask"]] == next(results)
    assert compared >= 40 and odd >= 3


def test_truncate_sequences_and_overflow_with_stride():
    a, b = [1, 2, 3, 4, 5], [6, 7, 8]
    # longest_first, 3 to remove: a loses 5, then a (4 vs 3) loses 4, then the tie cuts b.
    assert truncate_sequences(a, b, 3, "longest_first", stride=1) == ([1, 2, 3], [6, 7], [3, 4, 5])
    assert truncate_sequences(a, b, 2, "only_first", stride=1) == ([1, 2, 3], b, [3, 4, 5])
    assert truncate_sequences(a, b, 2, "only_second") == (a, [6], [7, 8])
    with pytest.raises(BadValueError, match="do_not_truncate"):
        truncate_sequences(a, b, 1, "do_not_truncate")
    with pytest.raises(BadValueError, match="only_second.*fewer"):
        truncate_sequences(a, b, 3, "only_second")


def test_tokenizer_2x_methods(tmp_path):
    tokenizer = BertTokenizer.from_pretrained(minilm_dir())
    text = "the unaffable text"
    assert tokenizer.encode(text) == tokenizer.encode_plus(text)["input_ids"]
    assert tokenizer.encode(text, add_special_tokens=False) == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    ids = tokenizer.encode(text, add_special_tokens=False)
    prepared = tokenizer.prepare_for_model(ids, max_length=4, return_special_tokens_mask=True,
                                           return_overflowing_tokens=True)
    assert prepared["input_ids"] == [tokenizer.cls_token_id] + ids[:2] + [tokenizer.sep_token_id]
    assert prepared["special_tokens_mask"] == [1, 0, 0, 1] and prepared["overflowing_tokens"] == ids[2:]
    padded = tokenizer.encode_plus(text, max_length=10, pad_to_max_length=True, return_tensors="pt")
    assert padded["input_ids"].shape == (1, 10)
    assert padded["attention_mask"][0].tolist() == [1] * (len(ids) + 2) + [0] * (8 - len(ids))
    assert tokenizer.all_special_ids == [100, 102, 0, 101, 103] and len(tokenizer) == 30522
    with pytest.raises(Unsupported2xArgument, match="return_tensors='tf'"):
        tokenizer.encode(text, return_tensors="tf")

    model = BertModel.from_pretrained(minilm_dir())
    old_table = model.embeddings.word_embeddings.weight.detach().clone()
    assert tokenizer.add_tokens(["[E1]", "the", "[E2]"]) == 2  # "the" is already in the vocabulary
    assert tokenizer.add_special_tokens({"additional_special_tokens": ["[E3]"]}) == 1
    assert len(tokenizer) == 30525 and tokenizer.tokenize("a[E1]b [E3]") == ["a", "[E1]", "b", "[E3]"]
    table = model.resize_token_embeddings(len(tokenizer))
    assert table.weight.shape == (30525, 384) and model.config.vocab_size == 30525
    assert torch.equal(table.weight[:30522], old_table)
    assert tokenizer.additional_special_tokens == ["[E3]"]

    written = tokenizer.save_vocabulary(vocab_path=str(tmp_path))
    assert written == (str(tmp_path / "vocab.txt"),)
    reread = BertTokenizer(written[0])
    assert len(reread) == 30525 and reread.convert_tokens_to_ids(["[E2]"]) == [30523]


def test_vocab_without_pad_and_mask_tokenizes(tmp_path):
    # The vocabulary of Google's tokenization_test.py (test_full_tokenizer): no [PAD], no [MASK].
    vocab = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","]
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"))
    tokens = tokenizer.tokenize("UNwant\u00E9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
    assert tokenizer.pad_token_id is None and tokenizer.mask_token_id is None
    with pytest.raises(BadValueError, match="no '\\[PAD\\]' to pad with"):
        tokenizer.encode_plus("want", max_length=8, pad_to_max_length=True)


# ---- AdamW and the schedules ------------------------------------------------------------------------------------

def adamw_2x_reference(weight, grads, lr, betas, eps, weight_decay, correct_bias):
    """transformers 2.x's AdamW step written out with plain tensors (decay after the Adam step, as 2.x did)."""
    w, m, v = weight.clone(), torch.zeros_like(weight), torch.zeros_like(weight)
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        step = lr
        if correct_bias:
            step = lr * math.sqrt(1 - betas[1] ** t) / (1 - betas[0] ** t)
        w = w - step * m / (v.sqrt() + eps)
        w = w - lr * weight_decay * w
    return w


@pytest.mark.parametrize("correct_bias", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adamw_matches_the_2x_reference(correct_bias, weight_decay):
    torch.manual_seed(0)
    weight = torch.randn(50, dtype=torch.float64)
    grads = [torch.randn(50, dtype=torch.float64) for _ in range(5)]
    param = torch.nn.Parameter(weight.clone())
    optimizer = AdamW([param], lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=weight_decay,
                      correct_bias=correct_bias)
    for g in grads:
        param.grad = g.clone()
        optimizer.step()
    expected = adamw_2x_reference(weight, grads, 1e-3, (0.9, 0.999), 1e-6, weight_decay, correct_bias)
    # Two documented differences from 2.x (optimization.py): decay before the step, not after (lr^2 * wd per
    # step), and with correct_bias=True eps added after the bias correction, as torch.optim.AdamW does.
    exact = weight_decay == 0 and not correct_bias
    assert torch.allclose(param.detach(), expected, rtol=0, atol=1e-15 if exact else 2e-6)  # lr = 1e-3
    if correct_bias:
        reference = torch.nn.Parameter(weight.clone())
        torch_adamw = torch.optim.AdamW([reference], lr=1e-3, eps=1e-6, weight_decay=weight_decay)
        for g in grads:
            reference.grad = g.clone()
            torch_adamw.step()
        assert torch.allclose(param.detach(), reference.detach(), rtol=0, atol=1e-12)
    # Without bias correction the first step is about 3.16 lr per element, not lr (BERTAdam's large early steps).
    one = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    one.grad = torch.ones(1, dtype=torch.float64)
    AdamW([one], lr=1e-3, correct_bias=correct_bias).step()
    assert abs(one.item()) == pytest.approx(1e-3 * (1 if correct_bias else 0.1 / math.sqrt(0.001)), rel=1e-3)


def test_schedules_match_the_oracle_step_by_step(tmp_path):
    warmup, total, steps = 4, 20, 26
    oracle = run_oracle_json(f"""
        import json, torch
        from transformers import optimization as o
        def lrs(make):
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            sched = make(opt)
            out = []
            for _ in range({steps}):
                out.append(sched.get_last_lr()[0]); opt.step(); sched.step()
            return out
        print(json.dumps({{
            "constant": lrs(lambda opt: o.get_constant_schedule(opt)),
            "warmup_constant": lrs(lambda opt: o.get_constant_schedule_with_warmup(opt, {warmup})),
            "linear": lrs(lambda opt: o.get_linear_schedule_with_warmup(opt, {warmup}, {total})),
            "cosine": lrs(lambda opt: o.get_cosine_schedule_with_warmup(opt, {warmup}, {total})),
            "restarts": lrs(lambda opt: o.get_cosine_with_hard_restarts_schedule_with_warmup(
                opt, {warmup}, {total}, 3)),
        }}))
    """, tmp_path)

    def lrs(make):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler, out = make(optimizer), []
        for _ in range(steps):
            out.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return out

    ours = {
        "constant": lrs(lambda opt: ConstantLRSchedule(opt)),
        "warmup_constant": lrs(lambda opt: WarmupConstantSchedule(opt, warmup_steps=warmup)),
        "linear": lrs(lambda opt: WarmupLinearSchedule(opt, warmup_steps=warmup, t_total=total)),
        "cosine": lrs(lambda opt: WarmupCosineSchedule(opt, warmup_steps=warmup, t_total=total)),
        "restarts": lrs(lambda opt: WarmupCosineWithHardRestartsSchedule(opt, warmup, total, cycles=3)),
    }
    for name in ours:
        assert ours[name] == pytest.approx(oracle[name], abs=1e-12), name
    assert ours["linear"][:5] == pytest.approx([0, 0.025, 0.05, 0.075, 0.1]) and ours["linear"][-1] == 0


# ---- Auto classes -------------------------------------------------------------------------------------------------

def test_auto_classes_choose_by_model_type_then_by_name(tmp_path):
    assert type(AutoModel.from_pretrained(minilm_dir())).__name__ == "BertModel"
    # A 2.x config.json without model_type: the folder's name decides, as in 2.x.
    for name, expected in (("my-bert-base", "BertConfig"), ("my-model", None)):
        folder = tmp_path / name
        folder.mkdir()
        values = json.loads((minilm_dir() / "config.json").read_text())
        values.pop("model_type", None)
        (folder / "config.json").write_text(json.dumps(values))
        if expected:
            assert type(AutoConfig.from_pretrained(folder)).__name__ == expected
        else:
            with pytest.raises(BadValueError, match="no model_type, and the name 'my-model'"):
                AutoConfig.from_pretrained(folder)


# ---- pre-training heads and load_tf_weights_in_bert ----------------------------------------------------------------

def test_tf_pretraining_heads_load_and_match_the_oracle(tmp_path):
    config = BertConfig.from_json_file(str(TF_TINY / "bert_config.json"))
    model = load_tf_weights_in_bert(BertForPreTraining(config), config, str(TF_TINY / "bert_model.ckpt"))
    checkpoint = TFCheckpoint(TF_TINY / "bert_model.ckpt")
    assert torch.equal(model.cls.predictions.transform.dense.weight,
                       checkpoint.read("cls/predictions/transform/dense/kernel").t())
    assert torch.equal(model.cls.predictions.bias, checkpoint.read("cls/predictions/output_bias"))
    assert torch.equal(model.cls.seq_relationship.weight, checkpoint.read("cls/seq_relationship/output_weights"))
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    # from_pretrained(TF folder) reads the same heads; the masked-LM model takes its half.
    same = BertForPreTraining.from_pretrained(TF_TINY)
    assert same.loading_info.missing_keys == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    masked = BertForMaskedLM.from_pretrained(TF_TINY)
    assert masked.loading_info.missing_keys == []

    model.save_pretrained(tmp_path / "converted")
    ids = [[2, 5, 6, 7, 3, 8, 9, 3]]
    types = [[0, 0, 0, 0, 0, 1, 1, 1]]
    model.eval()  # built by the constructor, as 2.x's converter does: in training mode
    with torch.no_grad():
        ours = model(torch.tensor(ids), token_type_ids=torch.tensor(types),
                     masked_lm_labels=torch.tensor([[-1, 5, -1, -1, -1, 9, -1, -1]]),
                     next_sentence_label=torch.tensor([0]))
    oracle = run_oracle_json(f"""
        import json, torch
        from transformers import BertForPreTraining
        model = BertForPreTraining.from_pretrained({str(tmp_path / "converted")!r}).eval()
        with torch.no_grad():
            out = model(torch.tensor({ids}), token_type_ids=torch.tensor({types}),
                        labels=torch.tensor([[-100, 5, -100, -100, -100, 9, -100, -100]]),
                        next_sentence_label=torch.tensor([0]))
        print(json.dumps([out.loss.item(), out.prediction_logits.tolist(), out.seq_relationship_logits.tolist()]))
    """, tmp_path)
    assert ours[0].item() == pytest.approx(oracle[0], abs=1e-4)
    assert torch.allclose(ours[1], torch.tensor(oracle[1]), atol=1e-4)
    assert torch.allclose(ours[2], torch.tensor(oracle[2]), atol=1e-4)


# ---- Google's ALBERT TensorFlow names -----------------------------------------------------------------------------

def test_google_albert_checkpoint_loads_converts_and_matches_the_oracle(tmp_path):
    from safetensors.torch import load_file
    from transformers import AlbertForSequenceClassification
    from transformers.convert_tf_checkpoint import convert_tf_checkpoint
    # Written by TensorFlow (tests/fixtures/write_tf_checkpoint.py albert).
    folder = REPO_ROOT / "tests" / "fixtures" / "tf_albert_tiny"
    model = AlbertForSequenceClassification.from_pretrained(folder)  # albert_config.json, model.ckpt-best.*
    expected = load_file(str(REPO_ROOT / "tests" / "fixtures" / "tf_albert_tiny_expected.safetensors"))
    state = model.state_dict()
    assert sorted(state) == sorted(expected) and all(torch.equal(state[k], v) for k, v in expected.items())
    assert model.loading_info.missing_keys == []
    assert sorted(model.loading_info.unexpected_keys) == ["bert/pooler/dense/kernel/adam_m", "global_step"]

    info = convert_tf_checkpoint(folder, tmp_path / "converted")
    assert info.missing_keys == []
    assert sorted(os.listdir(tmp_path / "converted")) == ["config.json", "model.safetensors", "vocab.txt"]
    ids, types = [[2, 5, 7, 9, 3, 11, 12, 3]], [[0, 0, 0, 0, 0, 1, 1, 1]]
    with torch.no_grad():
        ours = AlbertForSequenceClassification.from_pretrained(tmp_path / "converted")(
            torch.tensor(ids), token_type_ids=torch.tensor(types)).logits
    oracle = run_oracle_json(f"""
        import json, torch
        from transformers import AlbertForSequenceClassification
        model = AlbertForSequenceClassification.from_pretrained({str(tmp_path / "converted")!r}).eval()
        with torch.no_grad():
            print(json.dumps(model(torch.tensor({ids}), token_type_ids=torch.tensor({types})).logits.tolist()))
    """, tmp_path)
    assert torch.allclose(ours, torch.tensor(oracle), atol=1e-5)


def test_other_families_take_2x_options_at_their_defaults_only(tmp_path):
    from tokenizers import ByteLevelBPETokenizer  # builds a small vocabulary; tests only
    from transformers import RobertaTokenizer
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(text for _, text in shuffled_tweets(300)), encoding="utf-8")
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(corpus)], vocab_size=400, min_frequency=2,
              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    (tmp_path / "tok").mkdir()
    bpe.save_model(str(tmp_path / "tok"))
    tokenizer = RobertaTokenizer.from_pretrained(tmp_path / "tok")
    a, b = "the movie was good", "not bad at all"
    # A 2.x script's call (add_special_tokens=True, max_length) gives the tokenizer's own encoding.
    assert tokenizer.encode_plus(a, b, add_special_tokens=True, max_length=12) == tokenizer.encode_plus(a, b, 12)
    with pytest.raises(Unsupported2xArgument, match=r"RobertaTokenizer.encode_plus\(pad_to_max_length=True\)"):
        tokenizer.encode_plus(a, pad_to_max_length=True, max_length=12)
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_len'"):
        tokenizer.encode_plus(a, max_len=12)


# ---- BertTokenizer(rule="google") ----------------------------------------------------------------------------------

GOOGLE_TEST_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","]


@pytest.mark.parametrize("rule", ["huggingface", "google"])
def test_cases_of_googles_tokenization_test_hold_under_both_rules(tmp_path, rule):
    """Inputs and outputs of google-research/bert's tokenization_test.py (facts, not its code)."""
    from transformers.tokenization_bert import BasicTokenizer
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in GOOGLE_TEST_VOCAB), encoding="utf-8")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"), rule=rule)
    assert tokenizer.tokenize("UNwant\u00E9d,running") == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    assert tokenizer.tokenize("") == []
    assert BasicTokenizer(rule=rule).tokenize("ah\u535A\u63A8zz") == ["ah", "\u535A", "\u63A8", "zz"]
    assert BasicTokenizer(rule=rule).tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you",
                                                                                 "?"]
    assert BasicTokenizer(rule=rule).tokenize("H\u00E9llo") == ["hello"]
    assert BasicTokenizer(do_lower_case=False, rule=rule).tokenize(" \tHeLLo!how  \n Are yoU?  ") == \
        ["HeLLo", "!", "how", "Are", "yoU", "?"]
    assert BasicTokenizer(rule=rule).tokenize("a\u0005b") == ["ab"]  # U+0005 is a control character (Cc)


def test_the_three_places_where_googles_rule_differs(tmp_path):
    from transformers.tokenization_bert import BasicTokenizer
    vocab = ["[UNK]", "[CLS]", "[SEP]", "a", "##a", "b", "e", "\u00e9"]
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    hf = BertTokenizer(str(tmp_path / "vocab.txt"))
    google = BertTokenizer(str(tmp_path / "vocab.txt"), rule="google")
    # 1. A private-use character (Co): Hugging Face drops it, Google keeps it and it becomes [UNK].
    assert hf.tokenize("a \ue000 b") == ["a", "b"]
    assert google.tokenize("a \ue000 b") == ["a", "[UNK]", "b"]
    # 2. A 150-character word: over Hugging Face's 100, under Google's 200.
    assert hf.tokenize("a" * 150) == ["[UNK]"]
    assert google.tokenize("a" * 150) == ["a"] + ["##a"] * 149
    # 3. NFC: "e" + U+0301 becomes "é" for Hugging Face; Google keeps the two code points.
    assert BasicTokenizer(do_lower_case=False).tokenize("e\u0301") == ["\u00e9"]
    assert BasicTokenizer(do_lower_case=False, rule="google").tokenize("e\u0301") == ["e\u0301"]
    # The rule is saved with the tokenizer and read back.
    google.save_pretrained(tmp_path / "saved")
    assert BertTokenizer.from_pretrained(tmp_path / "saved").tokenize("a \ue000 b") == ["a", "[UNK]", "b"]
    with pytest.raises(ValueError, match="rule 'googel'"):
        BertTokenizer(str(tmp_path / "vocab.txt"), rule="googel")


def test_roberta_returns_hidden_states_and_albert_refuses_them():
    import dataclasses
    from transformers import AlbertConfig, AlbertModel, RobertaConfig
    from transformers.modeling_roberta import RobertaForSequenceClassification
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=40, num_labels=3)
    plain = RobertaForSequenceClassification(config).eval()
    asking = RobertaForSequenceClassification(dataclasses.replace(config, output_hidden_states=True)).eval()
    asking.load_state_dict(plain.state_dict())
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    with torch.no_grad():
        logits, states = asking(ids)[:2]
        assert torch.allclose(logits, plain(ids).logits, atol=1e-6)  # the full last layer gives the same <s> row
        assert len(states) == 3 and states[-1].shape == (1, 5, 16)
    albert = AlbertConfig(vocab_size=30, embedding_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=40, output_hidden_states=True)
    with pytest.raises(Unsupported2xArgument, match="AlbertModel: output_hidden_states=True is supported by BERT's "
                                                    "and RoBERTa's models only"):
        AlbertModel(albert)


def test_the_2x_maps_list_the_shortcut_names_and_the_hub_repos_they_moved_to():
    from transformers import (AlbertConfig, AlbertModel, AlbertTokenizer, BertConfig, BertForSequenceClassification,
                              BertModel, BertTokenizer, RobertaConfig, RobertaTokenizer, XLNetConfig, XLNetModel)
    assert BertConfig.pretrained_config_archive_map["bert-base-chinese"] == "google-bert/bert-base-chinese"
    assert BertModel.pretrained_model_archive_map["bert-base-uncased"] == "google-bert/bert-base-uncased"
    assert BertForSequenceClassification.pretrained_model_archive_map["bert-base-cased"] == "google-bert/bert-base-cased"
    assert BertTokenizer.pretrained_vocab_files_map["vocab_file"]["bert-base-multilingual-cased"] == \
        "google-bert/bert-base-multilingual-cased"
    assert AlbertConfig.pretrained_config_archive_map["albert-base-v2"] == "albert/albert-base-v2"
    assert AlbertModel.pretrained_model_archive_map["albert-xxlarge-v1"] == "albert/albert-xxlarge-v1"
    assert AlbertTokenizer.pretrained_vocab_files_map["vocab_file"]["albert-large-v2"] == "albert/albert-large-v2"
    assert RobertaConfig.pretrained_config_archive_map["roberta-large-mnli"] == "FacebookAI/roberta-large-mnli"
    assert RobertaTokenizer.pretrained_vocab_files_map["merges_file"]["distilroberta-base"] == \
        "distilbert/distilroberta-base"
    assert XLNetModel.pretrained_model_archive_map["xlnet-large-cased"] == "xlnet/xlnet-large-cased"
    # Each family lists its own names only (2.x's ALL_MODELS adds them up across the config classes).
    assert "roberta-base" not in BertConfig.pretrained_config_archive_map
    assert "bert-base-uncased" not in XLNetConfig.pretrained_config_archive_map
