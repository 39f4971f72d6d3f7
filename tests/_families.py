"""Shared steps of the per-family parity tests (test_albert.py, test_roberta.py).

Each family's test module makes, once (module-scoped fixture):
  1. a tokenizer model trained on real tweets inside the test (SentencePiece for ALBERT, byte-level BPE for
     RoBERTa), small and fast;
  2. a tiny model of that family built and saved by *our* code, fine-tuned a few steps by run_classifier.py;
  3. one oracle run in which the reference tokenizes 2,000 tweets (and pairs), builds and saves its own tiny
     model with a fixed seed, computes its logits on a padded batch, and computes the logits of the folder
     run_classifier saved.
The tests then compare, and print their figures (lines starting PARITY) for the README's model table.
"""
import json
import logging

import torch

from _classifier_runs import balanced_tweets, run_main, write_generic_task
from _support import read_tweets, run_oracle_json

NUM_TOKENIZER_TEXTS = 2000
NUM_PAIRS = 300
BATCH = 16
MAX_LENGTH = 32
PAIR_MAX_LENGTH = 24
BATCH_MAX_LENGTH = 48  # tiny models are built with max_position_embeddings 64


def training_corpus(path, count=6000):
    """The first `count` tweets, one per line: what the tokenizer models are trained on."""
    texts = [" ".join(text.split()) for _, text in read_tweets(count)]
    path.write_text("\n".join(text for text in texts if text) + "\n", encoding="utf-8")
    return path


def held_out_texts():
    """2,000 raw tweets not used for training the tokenizer models (line breaks, odd bytes and all)."""
    return [text for _, text in read_tweets(6000 + NUM_TOKENIZER_TEXTS)[6000:]]


def write_texts(workdir):
    (workdir / "texts.json").write_text(json.dumps(held_out_texts()), encoding="utf-8")


# The part of every oracle script that tokenizes and computes logits; `tok` and `model_class` are bound
# before it runs, `trained` is the folder run_classifier saved.
ORACLE_COMMON = """
texts = json.load(open("texts.json"))
out = {{}}
out["ids"] = [tok(text)["input_ids"] for text in texts]
pairs = list(zip(texts[:{num_pairs}], texts[{num_pairs}:2 * {num_pairs}]))
encoded = [tok(a, b, truncation=True, max_length={pair_max_length}, return_token_type_ids=True) for a, b in pairs]
out["pair_ids"] = [e["input_ids"] for e in encoded]
out["pair_types"] = [e["token_type_ids"] for e in encoded]
# A padded batch of pairs, each second text cut short so that rows differ in length.
batch = tok(texts[:{batch}], [text[:30] for text in texts[{batch}:2 * {batch}]], padding=True, truncation=True,
            max_length={batch_max_length},
            return_token_type_ids=True, return_tensors="pt")
out["batch"] = {{name: tensor.tolist() for name, tensor in batch.items()}}
with torch.no_grad():
    out["reference_logits"] = model(**batch).logits.tolist()
    trained_model = model_class.from_pretrained({trained!r}).eval()
    out["trained_logits"] = trained_model(**batch).logits.tolist()
print(json.dumps(out))
"""


def oracle_common(trained):
    return ORACLE_COMMON.format(num_pairs=NUM_PAIRS, pair_max_length=PAIR_MAX_LENGTH, batch=BATCH,
                                max_length=MAX_LENGTH, batch_max_length=BATCH_MAX_LENGTH, trained=str(trained))


def fine_tune(model_type, model_dir, workdir, extra_flags=()):
    """run_classifier.py --model_type F: a few training steps on real tweets, then evaluation and saving."""
    data = write_generic_task(workdir / "data", balanced_tweets(24), balanced_tweets(12, start=24))
    out = workdir / f"{model_type}_out"
    report = LoadingReport()
    loading_logger = logging.getLogger("transformers.modeling_utils")
    saved_level = loading_logger.level
    loading_logger.setLevel(logging.INFO)  # whatever another test or the root logger was left at
    loading_logger.addHandler(report)
    try:
            results, log = run_main(["--model_type", model_type, "--model_name_or_path", model_dir, "--task_name",
                                 "generic", "--data_dir", data, "--output_dir", out, "--max_seq_length", MAX_LENGTH,
                                 "--do_train", "--do_eval", "--max_steps", 3, "--per_gpu_train_batch_size", 8,
                                 "--learning_rate", "1e-3", "--logging_steps", 1, "--save_steps", 0, "--seed", 3,
                                 *extra_flags])
    finally:
        loading_logger.removeHandler(report)
        loading_logger.setLevel(saved_level)
    return out, results, log, report.messages


def reference_model_script(prefix, tiny):
    """The oracle's first lines for one family ("Albert", "Roberta"): the reference's tokenizer read from tok/,
    and its tiny classifier (config values `tiny`, seed 0) saved to reference_model/, bound as tok, model_class,
    model for ORACLE_COMMON."""
    return f"""
import json, torch
from transformers import {prefix}Config, {prefix}ForSequenceClassification, {prefix}Tokenizer
tok = {prefix}Tokenizer.from_pretrained("tok")
model_class = {prefix}ForSequenceClassification
config = {prefix}Config(vocab_size=len(tok), num_labels=3, **{tiny!r})
torch.manual_seed(0)
model = model_class(config).eval()
model.save_pretrained("reference_model")
"""


def family_world(model_type, work, tokenizer, model_class, config, oracle_script, reinit_flags):
    """Steps 2 and 3 of the module docstring for one family, in `work`: our tiny model (model_class(config),
    seed 1) is saved with `tokenizer` to work/ours_init and fine-tuned by run_classifier.py with reinit_flags;
    the oracle then runs `oracle_script` (which binds tok, model_class and model) followed by ORACLE_COMMON,
    reading what run_classifier saved. Returns what the family's tests read, as a dict."""
    ours_dir = work / "ours_init"
    torch.manual_seed(1)
    model_class(config).save_pretrained(ours_dir)
    tokenizer.save_pretrained(ours_dir)
    trained, results, log, report = fine_tune(model_type, ours_dir, work, reinit_flags)
    write_texts(work)
    oracle = run_oracle_json(oracle_script + oracle_common(trained), work)
    return {"dir": work, "tokenizer": tokenizer, "oracle": oracle, "trained": trained, "results": results,
            "log": log, "report": report, "ours_init": ours_dir}


def assert_tokens_equal_the_reference(world):
    """Our tokenizer's ids equal the reference's on the 2,000 held-out tweets, and ids and token types on
    NUM_PAIRS pairs cut to PAIR_MAX_LENGTH. Returns our encodings of the pairs, for a family's own checks."""
    tokenizer, oracle = world["tokenizer"], world["oracle"]
    texts = json.loads((world["dir"] / "texts.json").read_text(encoding="utf-8"))
    ours = [tokenizer.encode_plus(text)["input_ids"] for text in texts]
    differing = [i for i, (a, b) in enumerate(zip(ours, oracle["ids"])) if a != b]
    assert len(ours) == len(oracle["ids"]) == NUM_TOKENIZER_TEXTS
    assert differing == [], f"{len(differing)} tweets differ, first {texts[differing[0]]!r}: " \
        f"{tokenizer.convert_ids_to_tokens(ours[differing[0]])}"
    pairs = [tokenizer.encode_plus(a, b, max_length=PAIR_MAX_LENGTH) for a, b in
             zip(texts[:NUM_PAIRS], texts[NUM_PAIRS:2 * NUM_PAIRS])]
    assert [p["input_ids"] for p in pairs] == oracle["pair_ids"]
    assert [p["token_type_ids"] for p in pairs] == oracle["pair_types"]
    return pairs


class LoadingReport(logging.Handler):
    """Collects what from_pretrained logs (its loading report) while installed."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def batch_tensors(oracle):
    return {name: torch.tensor(rows) for name, rows in oracle["batch"].items()}


def max_difference(logits, reference_rows):
    return (logits - torch.tensor(reference_rows)).abs().max().item()
