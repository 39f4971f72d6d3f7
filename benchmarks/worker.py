"""The measuring half of the benchmark: one process per side, our `transformers/` or Hugging Face's.

`benchmarks/run.py` starts this file once per side and measurement. The same code measures both sides;
only the `import transformers` differs:

    side "ours"       started from the repository root; the repository goes first on sys.path, so
                      `import transformers` finds our package.
    side "reference"  started with `python -I` from a temporary directory, so neither the working directory
                      nor this script's folder is on sys.path and `import transformers` finds the
                      installed Hugging Face package (as tests/_support.run_oracle runs it).
Which package was imported is checked, not assumed: a mix-up would make every ratio 1.0x.

Two ways to run:

    serve    a session that waits for commands on stdin, one JSON line each, and answers each on stdout
             with one line "@@bench <json>". run.py keeps one session per side open and sends
             "step" to ours, then to the reference, then to the reference, then to ours, ... so that both
             sides are timed in turns of a few seconds. On a machine that also runs other jobs, a busy
             spell then slows both sides instead of whichever happened to run during it.
             Sessions: load (from_pretrained), steps (training or inference steps, and matmuls),
             tokenize (a pass over the sentences).
    once     one measurement from start to end: rss (peak memory needs a fresh process per side) and
             epoch (ours only, so there is nothing to alternate with).

    python benchmarks/worker.py serve load --side ours --params params.json
    python benchmarks/worker.py once rss --side reference --params params.json --out result.json
"""
import argparse
import contextlib
import functools
import gc
import json
import logging
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REPLY_MARK = "@@bench "


# ---- setup -------------------------------------------------------------------------------------------------

def import_library(side):
    """`import transformers` for the given side, and prove that the right package came in."""
    if side == "ours":
        sys.path.insert(0, str(REPO_ROOT))
    import transformers
    origin = Path(transformers.__file__).resolve()
    is_ours = REPO_ROOT in origin.parents
    if is_ours != (side == "ours"):
        raise RuntimeError(f"side {side!r} imported the wrong transformers package: {origin}")
    if side == "reference":
        # The reference logs "newly initialized" warnings and draws progress bars while loading; neither is
        # work we want on screen. Both are cheap, so turning them off does not flatter it.
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    return transformers


def set_allocator(side):
    """Apply run_classifier's allocator setting (bert_read_step_to_step/allocator.py: glibc keeps freed blocks
    for the next step) to the sides that BENCH_ALLOCATOR names: "ours" (the default: each side as it trains
    by default, ours through run_classifier), "both", or "none". The reference side cannot import our
    package, so the module is loaded from its file; it touches nothing but the C allocator."""
    chosen = os.environ.get("BENCH_ALLOCATOR", "ours")
    if chosen not in (side, "both"):
        return "glibc defaults"
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "bench_allocator", REPO_ROOT / "bert_read_step_to_step" / "allocator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.keep_freed_memory()


def set_threads(threads):
    """Both sides run with the same number of intra-op threads; the run reports the number."""
    import torch
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def load_classifier(transformers, side, model_dir, num_labels, reinit_keys=None):
    """BertForSequenceClassification from a checkpoint directory, as a fine-tuning script loads it."""
    import torch
    cls = transformers.BertForSequenceClassification
    if side == "ours":
        return cls.from_pretrained(model_dir, num_labels=num_labels, reinit_keys=reinit_keys)
    if reinit_keys:
        raise ValueError("the reference has no reinit_keys; its re-initialization is not measured")
    # Pinned to fp32, so that a changed default ("auto" = the checkpoint's dtype) cannot change the work.
    # The MiniLM checkpoint is fp32 anyway.
    return cls.from_pretrained(model_dir, num_labels=num_labels, dtype=torch.float32)


# The families measured from a random init (no pretrained weights of them ship): both sides build the same
# classes by the same names from the same config values.
FAMILY_CLASSES = {"albert": ("AlbertConfig", "AlbertForSequenceClassification"),
                  "roberta": ("RobertaConfig", "RobertaForSequenceClassification")}


def build_classifier(transformers, family, config_values, num_labels):
    """A randomly initialized classifier of `family`, built from `config_values` (a dict of config fields)."""
    config_name, model_name = FAMILY_CLASSES[family]
    config = getattr(transformers, config_name)(**config_values, num_labels=num_labels)
    return getattr(transformers, model_name)(config)


def random_batch(batch_size, seq_length, vocab_size, num_labels, seed):
    """Random token ids, every position real (attention_mask all 1), segment 0, random labels.

    [CLS] at position 0 keeps the pooler's input a plausible token; the values do not change the work.
    """
    import torch
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, vocab_size, (batch_size, seq_length), generator=generator)  # [B, L]
    input_ids[:, 0] = 101
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones(batch_size, seq_length, dtype=torch.long),  # [B, L]
        "token_type_ids": torch.zeros(batch_size, seq_length, dtype=torch.long),  # [B, L]
        "labels": torch.randint(0, num_labels, (batch_size,), generator=generator),  # [B]
    }


def train_step(model, optimizer, batch, autocast=None):
    """One optimizer step: forward with labels (the loss is computed inside the model), backward, AdamW.

    With an autocast context, the forward runs under it (backward then follows the forward's dtypes), as in
    run_classifier's training loop."""
    optimizer.zero_grad(set_to_none=True)
    with autocast if autocast is not None else contextlib.nullcontext():
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return loss


def make_optimizer(model):
    """The same optimizer on both sides: AdamW with fused=True, which is how each side trains by default
    (our run_classifier.py; Hugging Face's Trainer defaults to "adamw_torch_fused" with torch >= 2.8)."""
    import torch
    return torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, fused=True)


def summary(samples):
    """median, quartiles (IQR = p75 - p25), min, max and the raw samples."""
    ordered = sorted(samples)
    if len(ordered) >= 2:
        p25, _, p75 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        p25 = p75 = ordered[0]
    return {"median": statistics.median(ordered), "p25": p25, "p75": p75,
            "min": ordered[0], "max": ordered[-1], "n": len(ordered), "samples": list(samples)}


def peak_rss_mib():
    """This process's high-water resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_facts(model):
    """What the measured model looks like, so a reader can check that both sides ran the same network."""
    params = list(model.parameters())
    return {
        "class": f"{type(model).__module__}.{type(model).__name__}",
        "parameters": sum(p.numel() for p in params),
        "dtype": str(params[0].dtype),
        # Only the reference's config names its attention; ours is described here.
        "attention": getattr(model.config, "_attn_implementation",
                             "SDPA; attention_with_dropout when training on CPU"),
    }


def timed(fn):
    """(wall seconds, result) of fn()."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# ---- session: from_pretrained ------------------------------------------------------------------------------

class LoadSession:
    """Times from_pretrained of one variant per command.

    Variants: "safetensors" and "bin" (the same weights, as model.safetensors and as pytorch_model.bin),
    and for ours also "safetensors+reinit" and "bin+reinit" with reinit_keys (top 2 layers + pooler).
    """

    def __init__(self, side, p):
        self.side, self.p = side, p
        self.transformers = import_library(side)
        self.threads = set_threads(p["threads"])
        self.variants = {"safetensors": (p["model_dir"], None), "bin": (p["bin_dir"], None)}
        if side == "ours":
            self.variants["safetensors+reinit"] = (p["model_dir"], p["reinit_keys"])
            self.variants["bin+reinit"] = (p["bin_dir"], p["reinit_keys"])

    def facts(self):
        return {"threads": self.threads, "variants": list(self.variants)}

    def load(self, variant):
        model_dir, reinit_keys = self.variants[variant]
        gc.collect()
        seconds, model = timed(lambda: load_classifier(self.transformers, self.side, model_dir,
                                                        self.p["num_labels"], reinit_keys))
        facts = model_facts(model)
        del model
        return {"seconds": seconds, "model": facts}


# ---- session: training / inference steps, and the matmul peak ----------------------------------------------

class StepSession:
    """Holds one model, its optimizer and a few random batches; times one step per command.

    mode "train": model.train() (dropout on), forward with labels + backward + AdamW step.
    mode "infer": model.eval() under torch.no_grad(), forward only.
    precision "fp32", or "bf16": the forward pass (and so its backward) under bf16 autocast on CPU, the
    weights and AdamW's state staying fp32, as run_classifier --bf16 trains; the same on both sides.
    Also times one [n, n] @ [n, n] torch.mm per "matmul" command, in the step's precision (fp32 or bf16
    tensors), in this same process and on the same threads, as the machine's reachable peak for the
    FLOP/s fraction.
    """

    def __init__(self, side, p):
        import torch
        self.torch = torch
        transformers = import_library(side)
        self.threads = set_threads(p["threads"])
        self.mode = p["mode"]
        self.bf16 = p["precision"] == "bf16"
        torch.manual_seed(p["seed"])
        if p.get("family"):
            self.model = build_classifier(transformers, p["family"], p["family_config"], p["num_labels"])
        else:
            self.model = load_classifier(transformers, side, p["model_dir"], p["num_labels"])
        self.model.train(self.mode == "train")
        self.optimizer = make_optimizer(self.model) if self.mode == "train" else None
        self.batches = [random_batch(p["batch_size"], p["seq_length"], self.model.config.vocab_size,
                                     p["num_labels"], p["seed"] + i) for i in range(4)]
        self.steps_done = 0
        generator = torch.Generator().manual_seed(0)
        n, dtype = p["matmul_n"], torch.bfloat16 if self.bf16 else torch.float32
        self.a = torch.randn(n, n, generator=generator).to(dtype)
        self.b = torch.randn(n, n, generator=generator).to(dtype)
        self.c = torch.empty(n, n, dtype=dtype)

    def facts(self):
        return {"threads": self.threads, "model": dict(model_facts(self.model), bf16_autocast=self.bf16)}

    def autocast(self):
        """bf16 autocast for the bf16 rows, a disabled one (plain fp32) otherwise."""
        return self.torch.autocast("cpu", dtype=self.torch.bfloat16, enabled=self.bf16)

    def step(self):
        batch = self.batches[self.steps_done % len(self.batches)]
        self.steps_done += 1
        cpu_start = time.process_time()
        if self.mode == "train":
            seconds, _ = timed(lambda: train_step(self.model, self.optimizer, batch, self.autocast()))
        else:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            with self.torch.no_grad(), self.autocast():
                seconds, _ = timed(lambda: self.model(**inputs))
        # CPU seconds of all threads: less sensitive than wall time to other jobs taking the cores away.
        return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu_start}

    def matmul(self):
        """2 n^3 FLOPs: n^2 outputs, each n multiplies and n adds."""
        seconds, _ = timed(lambda: self.torch.mm(self.a, self.b, out=self.c))
        return {"seconds": seconds}


# ---- session: tokenization ---------------------------------------------------------------------------------

class TokenizeSession:
    """Times one pass over all sentences per command, with a freshly built tokenizer each time.

    Building the tokenizer is not timed. A fresh one per pass means that a cache inside it (ours keeps one
    for WordPiece splits) starts empty every pass, as when a data set is tokenized once, so a warm-up pass
    cannot prime it.

    Implementations:
      ours:       "single"  encode_plus(text) per sentence;  "batched"  batch_encode_plus(all sentences)
      reference:  "python_single"  the pure-Python tokenizer, one call per sentence, if the package has one
                  "rust_single"    the Rust-backed tokenizer, one call per sentence
                  "rust_batched"   the Rust-backed tokenizer, one call with all sentences; it may use several
                                   threads (library default; RAYON_NUM_THREADS is set to the thread count)
                  "rust_batched_1thread"  the same with TOKENIZERS_PARALLELISM=false
    """

    def __init__(self, side, p):
        self.side = side
        transformers = import_library(side)
        self.sentences = json.loads(Path(p["sentences_file"]).read_text(encoding="utf-8"))
        model_dir = p["model_dir"]
        if side == "ours":
            make = functools.partial(transformers.BertTokenizer.from_pretrained, model_dir)
            self.impls = {
                "single": (make, lambda tok, texts: [tok.encode_plus(t)["input_ids"] for t in texts]),
                "batched": (make, lambda tok, texts: [e["input_ids"] for e in tok.batch_encode_plus(texts)]),
            }
            self.classes = {"ours": "transformers.tokenization_bert.BertTokenizer (this repository)"}
            return
        # In transformers 5.x `BertTokenizer` *is* the Rust-backed tokenizer (`BertTokenizerFast` is an alias
        # of it); the pure-Python one lives on as `BertTokenizerLegacy`. Older versions had BertTokenizer as
        # the Python one; this reads whichever names exist.
        rust_cls = getattr(transformers, "BertTokenizerFast", None) or transformers.BertTokenizer
        python_cls = getattr(transformers, "BertTokenizerLegacy", None)
        if python_cls is None and transformers.BertTokenizer is not rust_cls:
            python_cls = transformers.BertTokenizer
        self.classes = {"python": python_cls and f"{python_cls.__module__}.{python_cls.__name__}",
                        "rust": f"{rust_cls.__module__}.{rust_cls.__name__}",
                        "BertTokenizerFast is BertTokenizer": rust_cls is transformers.BertTokenizer}
        one_by_one = lambda tok, texts: [tok(t)["input_ids"] for t in texts]  # noqa: E731
        all_at_once = lambda tok, texts: tok(texts)["input_ids"]  # noqa: E731
        make_rust = functools.partial(rust_cls.from_pretrained, model_dir)
        self.impls = {}
        if python_cls is not None:
            self.impls["python_single"] = (functools.partial(python_cls.from_pretrained, model_dir), one_by_one)
        self.impls.update({"rust_single": (make_rust, one_by_one), "rust_batched": (make_rust, all_at_once),
                           "rust_batched_1thread": (make_rust, all_at_once)})
        self.make_rust = make_rust

    def facts(self):
        return {"implementations": list(self.impls), "classes": self.classes, "sentences": len(self.sentences)}

    def run(self, impl):
        make, encode_all = self.impls[impl]
        if self.side == "reference":
            # The Rust library reads TOKENIZERS_PARALLELISM at each call.
            os.environ["TOKENIZERS_PARALLELISM"] = "false" if impl == "rust_batched_1thread" else "true"
        tokenizer = make()
        gc.collect()
        cpu_start = time.process_time()
        seconds, ids = timed(lambda: encode_all(tokenizer, self.sentences))
        # CPU seconds (all threads) next to wall seconds show whether a call used more than one core.
        self.last_ids = ids
        return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu_start}

    def save_ids(self, impl, path):
        """Writes the ids of one more (untimed) pass of `impl`, for run.py to compare the sides."""
        make, encode_all = self.impls[impl]
        Path(path).write_text(json.dumps(encode_all(make(), self.sentences)), encoding="utf-8")
        return {"written": path}

    def save_cleaned_ids(self, path):
        """Reference only, untimed: the Rust tokenizer on text cleaned the way the original BERT cleans it
        (NFC, and every character of Unicode category C* other than tab/newline/CR removed). If a mismatch
        with ours disappears here, it comes from that cleaning rule alone."""
        import unicodedata

        def clean(text):
            text = unicodedata.normalize("NFC", text)
            return "".join(ch for ch in text if ch in "\t\n\r" or not unicodedata.category(ch).startswith("C"))

        tokenizer = self.make_rust()
        ids = [tokenizer(clean(t))["input_ids"] for t in self.sentences]
        Path(path).write_text(json.dumps(ids), encoding="utf-8")
        return {"written": path}


SESSIONS = {"load": LoadSession, "steps": StepSession, "tokenize": TokenizeSession}


def serve(side, kind, params):
    """Answer commands from stdin until "quit" or end of input.

    Replies go to the process's original stdout; anything a library prints goes to stderr instead, so it
    cannot be mistaken for a reply.
    """
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr

    def reply(obj):
        replies.write(REPLY_MARK + json.dumps(obj) + "\n")
        replies.flush()

    try:
        session = SESSIONS[kind](side, params)
        reply({"ready": True, "facts": session.facts()})
    except Exception as error:  # noqa: BLE001 - report it to run.py, which prints it
        reply({"error": f"{type(error).__name__}: {error}"})
        raise
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        try:
            answer = getattr(session, command["op"])(**command.get("args", {}))
        except Exception as error:  # noqa: BLE001
            reply({"error": f"{type(error).__name__}: {error}"})
            raise
        reply(answer)
    reply({"peak_rss_mib": peak_rss_mib()})


# ---- once: peak memory of a short fine-tune ----------------------------------------------------------------

def measure_rss(side, p):
    """Peak RSS after imports, after loading, and after `steps` optimizer steps, in this fresh process."""
    import torch
    transformers = import_library(side)
    threads = set_threads(p["threads"])
    after_import = peak_rss_mib()
    torch.manual_seed(p["seed"])
    model = load_classifier(transformers, side, p["model_dir"], p["num_labels"])
    after_load = peak_rss_mib()
    model.train()
    optimizer = make_optimizer(model)
    batches = [random_batch(p["batch_size"], p["seq_length"], model.config.vocab_size, p["num_labels"],
                            p["seed"] + i) for i in range(4)]
    after_step = []
    for step in range(p["steps"]):
        train_step(model, optimizer, batches[step % len(batches)])
        after_step.append(peak_rss_mib())
    return {"threads": threads, "model": model_facts(model),
            "mib": {"after_import": after_import, "after_load": after_load, "peak": peak_rss_mib()},
            "peak_after_each_step_mib": after_step}


# ---- once: one epoch of the demo task, dynamic vs fixed padding (ours only) --------------------------------

def measure_epoch(side, p):
    """Seconds of one training epoch over the same features, in the same order, padded two ways.

    "dynamic": each batch padded to its own longest example (collate_features(batch)).
    "fixed":   each batch padded to max_seq_length (collate_features(batch, pad_to=max_seq_length)).
    Tokenization happens once, before any clock starts. The modes alternate, and which goes first
    alternates too, so neither always runs on a warmer (or busier) machine.
    """
    import torch
    from torch.utils.data import DataLoader
    if side != "ours":
        raise ValueError("the epoch benchmark measures our pipeline only")
    transformers = import_library(side)
    from bert_read_step_to_step import features as features_module
    from bert_read_step_to_step import tasks
    threads = set_threads(p["threads"])

    spec = tasks.get_task("generic")
    label_list = tasks.get_labels(spec, p["data_dir"])
    examples = tasks.read_examples(spec, p["data_dir"], "train")[:p["max_examples"]]
    tokenizer = transformers.BertTokenizer.from_pretrained(p["model_dir"])
    quiet = logging.getLogger("benchmarks.quiet")  # convert_examples_to_features logs its first examples
    quiet.setLevel(logging.WARNING)
    features = features_module.convert_examples_to_features(
        examples, tokenizer, p["max_seq_length"], label_list, spec.output_mode, logger=quiet)
    dataset = features_module.FeatureDataset(features)

    torch.manual_seed(p["seed"])
    model = load_classifier(transformers, side, p["model_dir"], len(label_list))
    model.train()
    optimizer = make_optimizer(model)
    pad_to = {"dynamic": None, "fixed": p["max_seq_length"]}

    def loader(mode):
        # The same seed gives the same shuffled order in both modes: only the padding differs.
        return DataLoader(dataset, batch_size=p["batch_size"], shuffle=True,
                          generator=torch.Generator().manual_seed(p["seed"]),
                          collate_fn=functools.partial(features_module.collate_features, pad_to=pad_to[mode]))

    def one_epoch(mode):
        lengths, real_tokens, step_seconds = [], 0, []
        cpu_start, start = time.process_time(), time.perf_counter()
        for batch in loader(mode):
            step_start = time.perf_counter()
            train_step(model, optimizer, batch)
            step_seconds.append(time.perf_counter() - step_start)
            lengths.append(batch["input_ids"].shape[1])
            real_tokens += int(batch["attention_mask"].sum())
        return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
                "batch_lengths": lengths, "step_seconds": step_seconds,
                "fed_tokens": sum(lengths) * p["batch_size"], "real_tokens": real_tokens}

    # Warm-up: two steps in each mode (thread pool, allocator, kernels).
    for mode in ("dynamic", "fixed"):
        for _, batch in zip(range(2), loader(mode)):
            train_step(model, optimizer, batch)
    epochs = {"dynamic": [], "fixed": []}
    for repeat in range(p["repeats"]):
        for mode in (("dynamic", "fixed") if repeat % 2 == 0 else ("fixed", "dynamic")):
            epochs[mode].append(one_epoch(mode))
    return {"threads": threads, "examples": len(features), "labels": label_list, "batch_size": p["batch_size"],
            "steps_per_epoch": -(-len(features) // p["batch_size"]),
            "seconds": {mode: summary([e["seconds"] for e in runs]) for mode, runs in epochs.items()},
            "epochs": epochs}


ONCE = {"rss": measure_rss, "epoch": measure_epoch}


def main():
    parser = argparse.ArgumentParser(description="One side of a benchmark measurement (see benchmarks/run.py).")
    parser.add_argument("how", choices=("serve", "once"))
    parser.add_argument("kind", choices=sorted(SESSIONS) + sorted(ONCE))
    parser.add_argument("--side", choices=("ours", "reference"), required=True)
    parser.add_argument("--params", required=True, help="JSON file with the measurement's parameters")
    parser.add_argument("--out", help="where `once` writes its JSON result")
    args = parser.parse_args()
    params = json.loads(Path(args.params).read_text(encoding="utf-8"))
    set_allocator(args.side)
    if args.how == "serve":
        serve(args.side, args.kind, params)
        return
    result = ONCE[args.kind](args.side, params)
    result["peak_rss_mib"] = peak_rss_mib()
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
