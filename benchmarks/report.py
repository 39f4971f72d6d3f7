"""The table of benchmarks/run.py: one row per figure (ours, reference, ratio), a PASS/MISS line per goal,
printed as text and written as Markdown next to the JSON of raw samples."""
import datetime
import statistics

from .harness import RESULTS_DIR, scaled, summary
from .sections import SEQ_LENGTH

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


LOAD_TARGETS = {"safetensors": 0.7, "bin": 1.0}  # ours / reference from_pretrained time, at most


def report_load(rep, res):
    rep.section("1. from_pretrained wall time, ms (median [p25-p75]); ratio = ours / reference time")
    if "error" in res:
        rep.row("error", res["error"][:60], None)
        for kind, target in LOAD_TARGETS.items():
            rep.goal(f"from_pretrained {kind} <= {target:.1f}x reference time", "error", f"<= {target:.2f}x", None)
        rep.goal("reinit overhead <= 5% of load", "error", "<= 5%", None)
        return
    ours, ref = res["ours"]["seconds"], res["reference"]["seconds"]
    # Issue 33: the safetensors load (the one every Hub model takes) at 0.7x the reference or below.
    for kind, target in LOAD_TARGETS.items():
        o, r = scaled(ours[kind], 1000), scaled(ref[kind], 1000)
        ratio = o["median"] / r["median"]
        rep.row(f"{kind} BertForSequenceClassification", o, r, ratio)
        rep.goal(f"from_pretrained {kind} <= {target:.1f}x reference time", f"{ratio:.2f}x", f"<= {target:.2f}x",
                 ratio <= target)
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
    rep.goal(goal_name, f"{frac * 100:.1f}%", f">= {target:.0%}", frac >= target)  # 64.7% must not read as 65%
    for side in ("ours", "reference"):
        f = flops[side]
        no_kv = " (in inference without that layer's keys and values)" if f.get("one_row_inference") else ""
        rep.notes.append(f"FLOP note, {precision}, {side}: {f['last_layer_rows']} row(s) per sequence in the last "
                         f"layer{no_kv}; train step {f['train'] / 1e9:.1f} GFLOP, "
                         f"inference {f['inference'] / 1e9:.1f} GFLOP "
                         f"(P_layer={f['p_layer']:,}, P_head={f['p_head']:,}, B={steps['shape']['batch_size']}, "
                         f"L={steps['shape']['seq_length']}; formula in training_flops)")


def unused_result_path(quick):
    """benchmarks/results/<date>[-quick].json, or <date>[-quick]-2.json, -3, ... if that exists: a second run
    on the same day never overwrites the first."""
    stem = f"{datetime.date.today():%Y-%m-%d}{'-quick' if quick else ''}"
    path, number = RESULTS_DIR / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = RESULTS_DIR / f"{stem}-{number}.json"
    return path


def report_profile(rep, res):
    """10. Where our training step's self CPU time goes, by op family (benchmarks/profile_ops.py)."""
    rep.section("10. per-op profile of our training step: share of self CPU time (torch.profiler, 3 steps)")
    for precision, profile in res.items():
        for family, share in profile["families"].items():
            rep.row(f"{precision}: {family}", f"{share:.0%}", "-", "-")
        rep.row(f"{precision}: self CPU ms per step", f"{profile['self_cpu_ms_per_step']:.0f}", "-", "-")
