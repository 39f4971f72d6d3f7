"""The per-op profile of our training step: where a step's time goes, by op family (matmuls, dropout masks,
dtype casts, softmax, ...), for fp32 and, where native, bf16 autocast. benchmarks/run.py runs it in a fresh
process of ours (section `profile`) and writes the summary next to its results:

    python -m benchmarks.profile_ops --precision bf16 --threads 2     # prints the summary as JSON

It measures torch.profiler's self CPU time over a few steps of BertForSequenceClassification (MiniLM, the
benchmark's shapes, dropout on, fused AdamW), after warm-up steps.
"""
import argparse
import json
import os

import torch
from torch.profiler import profile

from bert_read_step_to_step.allocator import keep_freed_memory
from bert_read_step_to_step.precision import autocast
from transformers import BertForSequenceClassification

from .harness import minilm_dir
from .sections import BATCH_SIZE, NUM_LABELS, SEQ_LENGTH

# Which family each aten op's self time counts toward; ops not named here are "other".
OP_FAMILIES = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
               "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "dropout masks": ("aten::uniform_", "aten::bernoulli_", "aten::random_", "aten::ge", "aten::ge_", "aten::lt",
                      "aten::native_dropout", "aten::native_dropout_backward"),
    "casts (copy_)": ("aten::copy_", "aten::_to_copy"),
    "softmax": ("aten::_softmax", "aten::_softmax_backward_data"),
    "layer norm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
    "gelu": ("aten::gelu", "aten::gelu_backward"),
    "elementwise mul/add/div": ("aten::mul", "aten::mul_", "aten::add", "aten::add_", "aten::div", "aten::div_"),
    "optimizer": ("aten::_fused_adamw_",),
}


def profile_steps(precision, steps=3, warmup=2):
    """{"families": {family: share of self CPU time}, "top_ops": [[op, ms per step, calls per step]], ...}"""
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=NUM_LABELS).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    ids = torch.randint(1000, model.config.vocab_size, (BATCH_SIZE, SEQ_LENGTH))  # [B, L] random tokens
    labels = torch.randint(0, NUM_LABELS, (BATCH_SIZE,))

    def step():
        with autocast(precision, "cpu"):
            loss = model(ids, torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    with profile() as prof:
        for _ in range(steps):
            step()
    ops = [(e.key, e.self_cpu_time_total / 1e3 / steps, e.count / steps) for e in prof.key_averages()]
    total = sum(ms for _, ms, _ in ops)
    family_of = {op: family for family, names in OP_FAMILIES.items() for op in names}
    families = {family: 0.0 for family in (*OP_FAMILIES, "other")}
    for op, ms, _ in ops:
        families[family_of.get(op, "other")] += ms / total
    top = sorted(ops, key=lambda row: -row[1])[:15]
    return {"precision": precision, "steps": steps, "threads": torch.get_num_threads(),
            "self_cpu_ms_per_step": total, "families": families,
            "top_ops": [[op, round(ms, 2), round(calls, 1)] for op, ms, calls in top]}


def main():
    parser = argparse.ArgumentParser(description="Per-op profile of our training step, as JSON on stdout.")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if os.environ.get("BENCH_ALLOCATOR", "ours") != "none":  # as run_classifier trains (see worker.set_allocator)
        keep_freed_memory()
    print(json.dumps(profile_steps(args.precision, args.steps)))


def bench_profile(precisions, threads):
    """run.py's `profile` section: profile_steps for each precision, each in a fresh process of ours."""
    import subprocess
    import sys
    from .harness import REPO_ROOT, WorkerFailed
    results = {}
    for precision in precisions:
        done = subprocess.run([sys.executable, "-m", "benchmarks.profile_ops", "--precision", precision,
                               "--threads", str(threads)], cwd=REPO_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise WorkerFailed(f"profile ({precision}) failed: {done.stderr.strip().splitlines()[-1:]}")
        results[precision] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


if __name__ == "__main__":
    main()
