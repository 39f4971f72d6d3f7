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
  10. the per-op profile of our training step (fp32, and bf16 where native): each op family's share of the
     step's self CPU time (benchmarks/profile_ops.py)
"""
import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bert_read_step_to_step.precision import bf16_support

from .harness import REPO_ROOT, WorkerFailed, log, machine_facts, minilm_dir
from .profile_ops import bench_profile
from .report import (Report, report_epoch, report_flops, report_load, report_profile, report_rss, report_steps,
                     report_tokenize, unused_result_path)
from .sections import (BATCH_SIZE, FAMILY_CONFIGS, SEQ_LENGTH, bench_epoch, bench_load, bench_rss, bench_steps,
                       bench_tokenize, step_flops, write_bin_copy)
from .sweep import SWEEP_BASELINE, bench_sweep, report_sweep, resolve_commit

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


# ---- main --------------------------------------------------------------------------------------------------

SECTIONS = ("load", "train", "infer", "tokenize", "epoch", "rss", "train_bf16", "infer_bf16", "train_albert",
            "train_roberta", "profile")
# Sections that run only when --only names them: the sweep takes ~25 minutes, longer than all the others together.
OPTIONAL_SECTIONS = ("sweep",)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark our transformers/ against Hugging Face transformers.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a few minutes)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads for both sides (default: all cores)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS + OPTIONAL_SECTIONS,
                        help="run only these sections; sweep (~25 min) runs only when named here")
    parser.add_argument("--out", help="JSON result path (default: benchmarks/results/<date>[-quick][-N].json)")
    parser.add_argument("--allocator", choices=("ours", "both", "none"), default="ours",
                        help="which sides get run_classifier's allocator setting (allocator.keep_freed_memory): "
                             "ours (default: each side as it trains by default), both, or none")
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

    os.environ["BENCH_ALLOCATOR"] = args.allocator  # read by every worker and by profile_ops (see worker.py)
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
        attempt("profile", lambda: bench_profile(("fp32", "bf16") if bf16.native else ("fp32",), args.threads))
        attempt("sweep", lambda: bench_sweep(args.quick, sweep_commit, args.sweep_baseline))
    machine["load_average_at_end"] = list(os.getloadavg())
    machine["benchmark_seconds"] = time.perf_counter() - started

    rep = Report()
    if "load" in results:
        report_load(rep, results["load"])
    if "train" in results:
        report_steps(rep, results["train"], f"2. training step, B={BATCH_SIZE} L={SEQ_LENGTH} fp32, dropout on, AdamW; "
                     "ratio = reference time / ours", "train", flops, "train step >= 1.6x reference throughput", target=1.6)
    if "infer" in results:
        report_steps(rep, results["infer"], "3. inference, same shapes, eval + no_grad; ratio = reference time / ours",
                     "inference", flops, "inference >= 1.35x reference throughput", target=1.35)
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
                     "train step >= 65% of matmul peak", 0.65)
    forced_label = " [FORCED: no native bf16 here, tiny shapes; a code-path check, not a measurement]" \
        if forced else ""
    if "train_bf16" in results:
        report_steps(rep, results["train_bf16"], f"8a. training step under bf16 autocast, "
                     f"B={bf16_shapes['batch_size']} L={bf16_shapes['seq_length']}; ratio = reference time / ours"
                     f"{forced_label}", "train", flops_bf16, "bf16 train step >= 2.0x reference throughput", target=2.0)
    if "infer_bf16" in results:
        report_steps(rep, results["infer_bf16"], f"8b. inference under bf16 autocast, same shapes{forced_label}",
                     "inference", flops_bf16, "bf16 inference >= 1.4x reference throughput", target=1.4)
    if "train_bf16" in results:
        report_flops(rep, results["train_bf16"], flops_bf16,
                     f"8c. achieved FLOP/s of the bf16 training step vs a measured bf16 matmul{forced_label}",
                     "bf16 train step >= 35% of bf16 matmul peak", 0.35)
    if "profile" in results:
        report_profile(rep, results["profile"])
    if "sweep" in results:
        report_sweep(rep, results["sweep"], args.quick)
    rep.notes.append({"ours": "allocator: ours ran with run_classifier's setting (allocator.keep_freed_memory), the "
                              "reference with glibc's defaults; --allocator both gives both the setting",
                      "both": "allocator: both sides ran with run_classifier's setting (allocator.keep_freed_memory)",
                      "none": "allocator: both sides ran with glibc's defaults"}[args.allocator])
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
    document = {"mode": mode, "settings": dict(s, allocator=args.allocator), "machine": machine, "flops": flops,
                "flops_bf16": flops_bf16, "forced_bf16": forced, "goals": rep.goals, "notes": rep.notes,
                "results": results}
    out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    out.with_suffix(".md").write_text(header + "\n\n" + rep.markdown() + "\n", encoding="utf-8")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 1 if any("error" in r for r in results.values() if isinstance(r, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
