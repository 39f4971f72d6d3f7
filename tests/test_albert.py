"""ALBERT against the reference: SentencePiece tokens on 2,000 real tweets, logits of a reference-saved model,
re-initialization by layer group, run_classifier.py --model_type albert, and its saved folder in the reference.

A SentencePiece model is trained on tweets inside the test (1,000 pieces, about 2 s); the tiny ALBERT has 4 depths
served by 2 groups of 2 inner layers each, so that sharing, groups and inner layers are all exercised.
"""
import json
import logging
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from _classifier_runs import one_torch_thread, run_main  # noqa: F401
from _families import (BATCH, BATCH_MAX_LENGTH, NUM_TOKENIZER_TEXTS, assert_tokens_equal_the_reference,
                       batch_tensors, family_world, max_difference, reference_model_script,
                       training_corpus)
from transformers.configuration_albert import AlbertConfig
from transformers.file_utils import BadValueError
from transformers.modeling_albert import AlbertForSequenceClassification, top_group_selectors
from transformers.tokenization_albert import AlbertTokenizer

TINY = dict(embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2,
            num_attention_heads=4, intermediate_size=37, max_position_embeddings=64, initializer_range=0.2,
            hidden_act="gelu_new")


def train_spiece(folder):
    import sentencepiece
    folder.mkdir()
    corpus = training_corpus(folder / "corpus.txt")
    # ALBERT's layout: <pad> 0, <unk> 1, then [CLS] [SEP] [MASK] as control symbols (never produced from text).
    sentencepiece.SentencePieceTrainer.Train(
        input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=1000, model_type="unigram",
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        minloglevel=2, num_threads=1)
    return folder


@pytest.fixture(scope="module")
def albert(tmp_path_factory):
    work = tmp_path_factory.mktemp("albert")
    tokenizer = AlbertTokenizer.from_pretrained(train_spiece(work / "tok") / "spiece.model")
    config = AlbertConfig(vocab_size=tokenizer.vocab_size, num_labels=3, **TINY)
    return family_world("albert", work, tokenizer, AlbertForSequenceClassification, config,
                        reference_model_script("Albert", TINY),
                        ["--reinit_layers", "1", "--reinit_pooler"])


def test_tokens_equal_the_reference_on_2000_tweets(albert):
    pairs = assert_tokens_equal_the_reference(albert)
    print(f"PARITY albert tokenizer: {NUM_TOKENIZER_TEXTS} tweets and {len(pairs)} pairs equal to the reference")


def test_reference_saved_model_gives_equal_logits_on_a_padded_batch(albert):
    batch = batch_tensors(albert["oracle"])
    assert (batch["attention_mask"] == 0).any(), "the batch should hold padding"
    model, info = AlbertForSequenceClassification.from_pretrained(albert["dir"] / "reference_model",
                                                                  output_loading_info=True)
    assert (info.missing_keys, info.unexpected_keys, info.mismatched_keys) == ([], [], [])
    with torch.no_grad():
        logits = model.eval()(**batch).logits
    difference = max_difference(logits, albert["oracle"]["reference_logits"])
    assert logits.abs().max() > 0.1  # logits that vary, so that equality means something
    assert difference < 1e-5
    print(f"PARITY albert logits (reference-saved, {BATCH} padded pairs, L<={BATCH_MAX_LENGTH}): "
          f"max |diff| {difference:.1e}")


def test_reinit_top_group_changes_exactly_its_tensors(albert):
    folder = albert["dir"] / "reference_model"
    checkpoint = load_file(str(folder / "model.safetensors"))
    config = AlbertConfig.from_pretrained(str(folder))
    selectors = top_group_selectors(config, 1, pooler=True)
    assert selectors == ["albert.encoder.albert_layer_groups.1", "albert.pooler"]
    model, info = AlbertForSequenceClassification.from_pretrained(folder, reinit_keys=selectors, reinit_seed=5,
                                                                  output_loading_info=True)
    chosen = {k for k in checkpoint if k.startswith(("albert.encoder.albert_layer_groups.1.", "albert.pooler."))}
    assert set(info.reinit_keys) == chosen and len(chosen) == 2 * 16 + 2
    changed = {k for k, t in model.state_dict().items() if not torch.equal(t, checkpoint[k])}
    # Every selected weight is drawn anew; biases and LayerNorms return to 0 and 1, which is also where the
    # reference's init left them, so they compare equal. Nothing outside the selection moves.
    layer_norms = ("LayerNorm.weight", "full_layer_layer_norm.weight")
    assert changed == {k for k in chosen if k.endswith("weight") and not k.endswith(layer_norms)}
    # ALBERT's own names work as for BERT: one inner layer's feed-forward output, nothing else.
    model, info = AlbertForSequenceClassification.from_pretrained(
        folder, reinit_keys=["encoder.albert_layer_groups.0.albert_layers.1.ffn_output"], output_loading_info=True)
    assert info.reinit_keys == ["albert.encoder.albert_layer_groups.0.albert_layers.1.ffn_output.weight",
                                "albert.encoder.albert_layer_groups.0.albert_layers.1.ffn_output.bias"]
    # The bias is re-initialized to zero, which is what the reference's init gave it too: only the weight differs.
    changed = [k for k, t in model.state_dict().items() if not torch.equal(t, checkpoint[k])]
    assert changed == ["albert.encoder.albert_layer_groups.0.albert_layers.1.ffn_output.weight"]


def test_reinit_layers_on_one_group_reinitializes_that_group(albert, tmp_path, caplog, capsys):
    """With one group, every depth runs its weights: --reinit_layers N (1..num_hidden_layers) selects it."""
    one_group = {**TINY, "num_hidden_groups": 1, "inner_group_num": 1}
    config = AlbertConfig(vocab_size=1000, num_labels=3, **one_group)
    torch.manual_seed(2)
    model = AlbertForSequenceClassification(config)
    with torch.no_grad():  # no bias at 0 and no LayerNorm at 1, so that every re-initialized tensor differs
        for parameter in model.parameters():
            parameter.normal_()
    folder = tmp_path / "one_group"
    model.save_pretrained(folder)
    checkpoint = load_file(str(folder / "model.safetensors"))
    assert top_group_selectors(config, 0, pooler=True) == ["albert.pooler"]
    assert top_group_selectors(config, 1) == top_group_selectors(config, 4) == ["albert.encoder.albert_layer_groups.0"]
    with pytest.raises(BadValueError, match=re.escape("--reinit_layers 5: this ALBERT has 4 depths (choose 0..4)")):
        top_group_selectors(config, 5)
    with pytest.raises(BadValueError, match=re.escape("top 3 layer groups: this ALBERT has 2 (choose 0..2)")):
        top_group_selectors(AlbertConfig(**TINY), 3)

    reloaded, info = AlbertForSequenceClassification.from_pretrained(
        folder, reinit_keys=top_group_selectors(config, 2), reinit_seed=5, output_loading_info=True)
    group = {key for key in checkpoint if key.startswith("albert.encoder.albert_layer_groups.0.")}
    assert len(group) == 16 and set(info.reinit_keys) == group
    changed = {key for key, tensor in reloaded.state_dict().items() if not torch.equal(tensor, checkpoint[key])}
    assert changed == group  # and the embeddings, the mapping, the pooler and the classifier are as saved

    caplog.set_level(logging.WARNING, logger="run_classifier")
    run_main(["--model_type", "albert", "--model_name_or_path", folder, "--task_name", "generic", "--data_dir",
              albert["trained"].parent / "data", "--output_dir", tmp_path / "unused", "--list_keys",
              "--reinit_layers", "2", "--max_seq_length", "32"])
    sentence = ("this ALBERT shares one layer group across all 4 depths: --reinit_layers 2 re-initializes that "
                "group (albert.encoder.albert_layer_groups.0), so every depth changes, not only the top 2")
    assert sentence in [record.getMessage() for record in caplog.records if record.name == "run_classifier"]
    assert "\n16 re-initialized on request" in capsys.readouterr().out


def test_run_classifier_trains_evaluates_saves_and_the_reference_reads_it(albert):
    trained, log = albert["trained"], albert["log"]
    assert sorted(log.losses) == [1, 2, 3]
    assert "acc" in albert["results"]["final"]
    record = json.loads((trained / "reinit_keys.json").read_text())
    assert record["selectors"] == ["albert.encoder.albert_layer_groups.1", "albert.pooler"]
    assert len(record["resolved_keys"]) == 34
    # Group 1 of 2 runs at depths 2 and 3: "the top 1" changes two depths, and the record says so.
    assert record["reinit_layers_meaning"] == ("this ALBERT has 2 layer groups for 4 depths: --reinit_layers 1 "
                                               "re-initializes group 1, which serves the top 2 depths (2-3), not "
                                               "only the top 1")
    assert any("re-initialized on request" in m and "albert.encoder.albert_layer_groups.1: 32" in m
               for m in albert["report"]), "the loading report names the re-initialized group"
    assert (trained / "spiece.model").is_file()
    ours = AlbertForSequenceClassification.from_pretrained(trained).eval()
    initial = load_file(str(albert["ours_init"] / "model.safetensors"))
    assert not torch.equal(ours.state_dict()["classifier.weight"], initial["classifier.weight"])  # it trained
    with torch.no_grad():
        logits = ours(**batch_tensors(albert["oracle"])).logits
    difference = max_difference(logits, albert["oracle"]["trained_logits"])
    assert difference < 1e-5
    print(f"PARITY albert run_classifier-saved folder in the reference: max |diff| {difference:.1e}")


def test_list_keys_and_a_disagreeing_model_type(albert, capsys):
    folder = albert["ours_init"]
    run_main(["--model_type", "albert", "--model_name_or_path", folder, "--task_name", "generic", "--data_dir",
              albert["trained"].parent / "data", "--output_dir", albert["dir"] / "unused", "--list_keys",
              "--reinit_layers", "1", "--max_seq_length", "32"])
    printed = capsys.readouterr().out
    assert re.search(r"albert\.encoder\.albert_layer_groups\.1\.albert_layers\.0\.ffn\.weight +\[37, 32\] +re-initialized on request",
                     printed)
    assert re.search(r"albert\.embeddings\.word_embeddings\.weight +\[1000, 16\] +loaded from checkpoint", printed)
    with pytest.raises(BadValueError, match=r"--model_type bert disagrees with .*config\.json, which says "
                                            r"model_type 'albert'"):
        run_main(["--model_type", "bert", "--model_name_or_path", folder, "--task_name", "generic", "--data_dir",
                  albert["trained"].parent / "data", "--output_dir", albert["dir"] / "unused", "--do_train"])
    assert not (albert["dir"] / "unused").exists()


def test_albert_zh_folder_uses_bert_vocab(albert, tmp_path):
    """albert_zh ships vocab.txt: the family's tokenizer is then BERT's WordPiece."""
    from _support import minilm_dir
    from transformers.model_families import FAMILIES
    folder = tmp_path / "albert_zh"
    shutil.copytree(albert["ours_init"], folder)
    (folder / "spiece.model").unlink()
    (folder / "tokenizer_config.json").unlink()
    shutil.copy(minilm_dir() / "vocab.txt", folder / "vocab.txt")
    tokenizer = FAMILIES["albert"].load_tokenizer(str(folder), None, None)
    assert type(tokenizer).__name__ == "BertTokenizer"
    assert tokenizer.tokenize("unaffable") == ["una", "##ffa", "##ble"]
