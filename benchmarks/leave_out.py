"""What the element-wise parts of our training step cost, each measured by leaving it out of the step.

profile_ops.py says how torch.profiler splits a step's self CPU time among ops, but the profiler adds time to
every op it records, and an op that finds its input already in cache looks cheaper than one that does not.
This script times the step itself: one process alternates the whole step with the same step minus one part,
and the difference of the medians is what that part costs, which is the most that fusing it away could save:

    python -m benchmarks.leave_out --precision bf16 --rounds 11     # a table on stdout, --json for data

The parts (MiniLM, the benchmark's 32 x 128 batch, dropout on, fused AdamW; `PARTS` below):

    attention dropout    the [B, N, L, L] keep mask drawn and the probabilities multiplied by it
    attention mask multiply  the probabilities not multiplied by the mask (it is still drawn)
    softmax              the scores used as they are instead of their softmax
    GELU                 the feed-forward activation
    hidden dropout       the [B, L, H] dropouts: after the embeddings, after attention, after the feed-forward
    all of these         attention dropout, softmax, GELU and hidden dropout together

A step with a part left out still runs every matmul on the same shapes, but it is no longer BERT: its losses
mean nothing and it exists for timing only. Nothing here changes the model outside `left_out`'s `with`.
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import time

import torch

import transformers.modeling_bert as modeling_bert
from bert_read_step_to_step.allocator import keep_freed_memory
from bert_read_step_to_step.precision import autocast
from transformers import BertForSequenceClassification

from .harness import minilm_dir
from .sections import BATCH_SIZE, NUM_LABELS, SEQ_LENGTH

PARTS = ("attention dropout", "attention mask multiply", "softmax", "GELU", "hidden dropout", "all of these")


def attention_stand_in(softmax, mask, apply_mask):
    """A stand-in for modeling_bert.attention_with_dropout with some of its steps switched off: the same
    matmuls on the same shapes ([B, N, Q, D] in and out), the 1 / (1 - p) scale kept."""
    def attention(query, key, value, attention_bias, dropout_prob):
        batch, heads, rows, size = query.shape
        length = key.shape[2]
        query = query.reshape(batch * heads, rows, size)  # [B, N, Q, D] -> [B * N, Q, D]
        key_t = key.reshape(batch * heads, length, size).transpose(1, 2)  # [B, N, L, D] -> [B * N, D, L]
        scores = torch.bmm(query * (1.0 / math.sqrt(size)), key_t)  # [B * N, Q, L]
        if attention_bias is not None:
            # [B, 1, 1, L] -> [B * N, 1, L], broadcast over the Q rows
            scores = scores + attention_bias.expand(batch, heads, 1, length).reshape(batch * heads, 1, length)
        probs = torch.softmax(scores, dim=-1) if softmax else scores
        if mask:
            keep = modeling_bert.keep_mask(probs.shape, dropout_prob, probs.device, probs.dtype)
            if apply_mask:
                probs = probs * keep
        context = torch.bmm(probs, value.reshape(batch * heads, length, size))  # [B * N, Q, D]
        return (context * (1.0 / (1.0 - dropout_prob))).view(batch, heads, rows, size)  # -> [B, N, Q, D]
    return attention


def unchanged(x):
    return x


@contextlib.contextmanager
def left_out(model, part):
    """Within the `with`, `model`'s training step runs without `part` (one of PARTS); restored on the way out."""
    parts = {"attention dropout", "softmax", "GELU", "hidden dropout"} if part == "all of these" else {part}
    unknown = parts - set(PARTS)
    if unknown:
        raise ValueError(f"unknown part {sorted(unknown)[0]!r}; choose from {', '.join(PARTS)}")
    saved_attention = modeling_bert.attention_with_dropout
    intermediates = [m for m in model.modules() if isinstance(m, modeling_bert.BertIntermediate)]
    dropouts = [m for m in model.modules() if isinstance(m, modeling_bert.Dropout)]
    saved_activations = [m.activation for m in intermediates]
    saved_probs = [m.p for m in dropouts]
    try:
        if parts & {"attention dropout", "attention mask multiply", "softmax"}:
            modeling_bert.attention_with_dropout = attention_stand_in(
                softmax="softmax" not in parts, mask="attention dropout" not in parts,
                apply_mask="attention mask multiply" not in parts)
        if "GELU" in parts:
            for module in intermediates:
                module.activation = unchanged
        if "hidden dropout" in parts:
            for module in dropouts:
                module.p = 0.0  # dropout() and dropout_add() then add or return x as it is
        yield
    finally:
        modeling_bert.attention_with_dropout = saved_attention
        for module, activation in zip(intermediates, saved_activations):
            module.activation = activation
        for module, prob in zip(dropouts, saved_probs):
            module.p = prob


def measure(precision="fp32", parts=PARTS, rounds=11, batch_size=BATCH_SIZE, seq_length=SEQ_LENGTH):
    """{"whole step ms": median, "parts": {part: {"ms": median without it, "saves ms": ..., "saves %": ...}}}

    Each round times one step of every setting (the whole step, then each part left out), in an order that
    reverses every other round; the first round is warm-up. CPU time of this process, so other jobs on the
    machine count less."""
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=NUM_LABELS).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    ids = torch.randint(1000, model.config.vocab_size, (batch_size, seq_length))  # [B, L] random tokens
    labels = torch.randint(0, NUM_LABELS, (batch_size,))

    def step(setting):
        # Every setting trains the same model, so one that diverged would leave NaN weights to the others,
        # and their timings would no longer be of a real step: refused instead.
        start = time.process_time()
        with autocast(precision, "cpu"):
            loss = model(ids, torch.ones_like(ids), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.process_time() - start
        if not torch.isfinite(loss):
            raise RuntimeError(f"the step with {setting or 'nothing'} left out gave loss {loss.item()}; "
                               "the timings after it would not be of a real step")
        return seconds

    settings = [None, *parts]
    samples = {setting: [] for setting in settings}
    for round_index in range(rounds):
        for setting in (settings if round_index % 2 == 0 else settings[::-1]):
            with left_out(model, setting) if setting else contextlib.nullcontext():
                seconds = step(setting)
            if round_index > 0:
                samples[setting].append(seconds * 1000)
    whole = statistics.median(samples[None])
    return {"precision": precision, "threads": torch.get_num_threads(), "rounds": rounds - 1,
            "whole step ms": round(whole, 1),
            "parts": {part: {"ms": round(statistics.median(samples[part]), 1),
                             "saves ms": round(whole - statistics.median(samples[part]), 1),
                             "saves %": round(100 * (1 - statistics.median(samples[part]) / whole), 1)}
                      for part in parts}}


def as_table(result):
    lines = [f"{result['precision']}, {result['threads']} thread(s), median of {result['rounds']} rounds: "
             f"whole step {result['whole step ms']:.1f} ms",
             "| left out | step ms | saves ms | saves |", "|---|---|---|---|"]
    for part, row in result["parts"].items():
        lines.append(f"| {part} | {row['ms']:.1f} | {row['saves ms']:.1f} | {row['saves %']:.1f}% |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="Cost of each element-wise part of our training step, "
                                                 "measured by leaving it out.")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=11, help="rounds of steps, the first one warm-up")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error(f"--rounds must be at least 2 (the first is warm-up), got {args.rounds}")
    torch.set_num_threads(args.threads)
    if os.environ.get("BENCH_ALLOCATOR", "ours") != "none":  # as run_classifier trains (see worker.set_allocator)
        keep_freed_memory()
    result = measure(args.precision, rounds=args.rounds)
    print(json.dumps(result) if args.json else as_table(result))


if __name__ == "__main__":
    main()
