"""RoBERTa against the reference: byte-level BPE ids on 2,000 real tweets, logits of a reference-saved model
(positions past the padding id, one token type, its own head), re-initialization, run_classifier.py
--model_type roberta, its saved folder in the reference, and the dispatch rule that keeps Chinese
RoBERTa-wwm on BERT.

A byte-level BPE (1,000 tokens) is trained on tweets inside the test with the reference's `tokenizers`
(under a second).
"""
import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from _classifier_runs import one_torch_thread, run_main  # noqa: F401
from _families import (BATCH, BATCH_MAX_LENGTH, NUM_TOKENIZER_TEXTS, assert_tokens_equal_the_reference,
                       batch_tensors, family_world, max_difference, reference_model_script,
                       training_corpus)
from _support import minilm_dir
from transformers.configuration_roberta import RobertaConfig
from transformers.file_utils import BadValueError
from transformers.model_families import choose_family
from transformers.modeling_roberta import RobertaForSequenceClassification, roberta_layer_selectors
from transformers.tokenization_roberta import RobertaTokenizer

TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=66, initializer_range=0.2)


def train_bpe(folder):
    from tokenizers import ByteLevelBPETokenizer  # the reference's library, in tests only
    folder.mkdir()
    bpe = ByteLevelBPETokenizer()
    # RoBERTa's layout: <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> 4.
    bpe.train([str(training_corpus(folder / "corpus.txt"))], vocab_size=1000, min_frequency=2,
              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.save_model(str(folder))
    return folder


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    work = tmp_path_factory.mktemp("roberta")
    tokenizer = RobertaTokenizer.from_pretrained(train_bpe(work / "tok"))
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, num_labels=3, **TINY)
    return family_world("roberta", work, tokenizer, RobertaForSequenceClassification, config,
                        reference_model_script("Roberta", TINY), ["--reinit_layers", "1"])


def test_tokens_equal_the_reference_on_2000_tweets(roberta):
    pairs = assert_tokens_equal_the_reference(roberta)
    assert all(set(p["token_type_ids"]) == {0} for p in pairs)
    print(f"PARITY roberta tokenizer: {NUM_TOKENIZER_TEXTS} tweets and {len(pairs)} pairs equal to the reference")


def test_reference_saved_model_gives_equal_logits_on_a_padded_batch(roberta):
    batch = batch_tensors(roberta["oracle"])
    assert (batch["attention_mask"] == 0).any() and (batch["input_ids"] == 1).any(), "padded with <pad> = 1"
    model, info = RobertaForSequenceClassification.from_pretrained(roberta["dir"] / "reference_model",
                                                                   output_loading_info=True)
    assert (info.missing_keys, info.unexpected_keys, info.mismatched_keys) == ([], [], [])
    with torch.no_grad():
        logits = model.eval()(**batch).logits
    difference = max_difference(logits, roberta["oracle"]["reference_logits"])
    assert logits.abs().max() > 0.1
    assert difference < 1e-5
    print(f"PARITY roberta logits (reference-saved, {BATCH} padded pairs, L<={BATCH_MAX_LENGTH}): "
          f"max |diff| {difference:.1e}")


def test_reinit_top_layer_changes_exactly_its_tensors(roberta):
    folder = roberta["dir"] / "reference_model"
    checkpoint = load_file(str(folder / "model.safetensors"))
    config = RobertaConfig.from_pretrained(str(folder))
    selectors = roberta_layer_selectors(config, 1)
    assert selectors == ["roberta.encoder.layer.2"]
    model, info = RobertaForSequenceClassification.from_pretrained(folder, reinit_keys=selectors, reinit_seed=5,
                                                                   output_loading_info=True)
    chosen = {k for k in checkpoint if k.startswith("roberta.encoder.layer.2.")}
    assert set(info.reinit_keys) == chosen and len(chosen) == 16
    changed = {k for k, t in model.state_dict().items() if not torch.equal(t, checkpoint[k])}
    # Every selected weight is drawn anew; biases and LayerNorms return to 0 and 1, which is also where the
    # reference's init left them, so they compare equal. Nothing outside the selection moves.
    assert changed == {k for k in chosen if k.endswith("weight") and "LayerNorm" not in k}
    with pytest.raises(BadValueError, match="RoBERTa's classifier has no pooler"):
        roberta_layer_selectors(config, 1, pooler=True)


def test_run_classifier_trains_evaluates_saves_and_the_reference_reads_it(roberta):
    trained, log = roberta["trained"], roberta["log"]
    assert sorted(log.losses) == [1, 2, 3]
    assert "acc" in roberta["results"]["final"]
    record = json.loads((trained / "reinit_keys.json").read_text())
    assert record["selectors"] == ["roberta.encoder.layer.2"] and len(record["resolved_keys"]) == 16
    assert any("re-initialized on request" in m and "roberta.encoder.layer.2: 16" in m for m in roberta["report"])
    assert (trained / "vocab.json").is_file() and (trained / "merges.txt").is_file()
    ours = RobertaForSequenceClassification.from_pretrained(trained).eval()
    initial = load_file(str(roberta["ours_init"] / "model.safetensors"))
    assert not torch.equal(ours.state_dict()["classifier.out_proj.weight"], initial["classifier.out_proj.weight"])
    with torch.no_grad():
        logits = ours(**batch_tensors(roberta["oracle"])).logits
    difference = max_difference(logits, roberta["oracle"]["trained_logits"])
    assert difference < 1e-5
    print(f"PARITY roberta run_classifier-saved folder in the reference: max |diff| {difference:.1e}")


def test_list_keys_and_a_disagreeing_model_type(roberta, capsys):
    folder = roberta["ours_init"]
    common = ["--model_name_or_path", folder, "--task_name", "generic", "--data_dir",
              roberta["trained"].parent / "data", "--output_dir", roberta["dir"] / "unused", "--max_seq_length", "32"]
    run_main(["--model_type", "roberta", *common, "--list_keys", "--reinit_layers", "1"])
    printed = capsys.readouterr().out
    assert re.search(r"roberta\.encoder\.layer\.2\.output\.dense\.weight +\[32, 37\] +re-initialized on request", printed)
    assert re.search(r"classifier\.out_proj\.weight +\[3, 32\] +loaded from checkpoint", printed)
    with pytest.raises(BadValueError, match=r"--model_type albert disagrees with .*config\.json, which says "
                                            r"model_type 'roberta'"):
        run_main(["--model_type", "albert", *common, "--do_train"])
    assert not (roberta["dir"] / "unused").exists()


def test_chinese_roberta_wwm_is_read_as_bert(tmp_path):
    """The seed's --model_type roberta: BERT's architecture and vocab.txt, under RoBERTa's name."""
    for declared in ("bert", "roberta", None):
        folder = tmp_path / f"wwm_{declared}"
        shutil.copytree(minilm_dir(), folder)
        config = json.loads((folder / "config.json").read_text())
        config.pop("model_type", None)
        if declared:
            config["model_type"] = declared
        (folder / "config.json").write_text(json.dumps(config))
        assert choose_family("roberta", str(folder)).name == "bert", declared
        assert choose_family("bert", str(folder)).name == "bert", declared
