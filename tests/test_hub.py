"""Hub names (transformers/hub.py) against a Hub on loopback (tests/_fake_hub.py) and HF transformers as oracle.

The Hub's client reads HF_ENDPOINT when it is imported, so everything that talks to the fake Hub runs in a
subprocess with HF_ENDPOINT (and HF_TOKEN) in its environment; this process holds the server and sees every
request it got. Three subprocesses in all:
    ours     fills cache A from the fake Hub (every from_pretrained, Auto*, a renamed repo, revision=, the
             errors, run_classifier.py with a Hub name and a token), then goes offline
    oracle   HF transformers reads cache A offline, and fills cache B from the fake Hub
    ours     with the Hub unreachable: cache A with a WARNING; then cache B offline; HF_HUB_OFFLINE's error
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from _classifier_runs import balanced_tweets, common_args, one_thread_env, write_generic_task
from _fake_hub import FakeHub, Repo
from _support import REPO_ROOT, minilm_dir, run_oracle_json

MAIN_COMMIT, V1_COMMIT, OTHER_COMMIT = "1" * 40, "2" * 40, "3" * 40
TOKEN = "hf_fakeTOKENthatmustNEVERbeWRITTEN"
TEXT = "The quick brown fox jumps over the lazy dog, unaffable."
MINILM_FILES = ("config.json", "vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json",
                "model.safetensors")


@pytest.fixture(scope="module")
def hub():
    minilm = {name: minilm_dir() / name for name in MINILM_FILES}
    server = FakeHub({
        "demo/minilm": Repo(minilm, {"main": MAIN_COMMIT, MAIN_COMMIT: MAIN_COMMIT, "v1": V1_COMMIT,
                                     V1_COMMIT: V1_COMMIT}, renamed_from=("minilm-base",)),
        "demo/config-only": Repo({"config.json": minilm_dir() / "config.json"}, {"main": OTHER_COMMIT}),
        "demo/shadowed": Repo({"config.json": minilm_dir() / "config.json"}, {"main": OTHER_COMMIT}),
    }).start()
    yield server
    server.stop()


def run_ours(script, workdir, env):
    """`script` in a subprocess that imports our package, from `workdir`; returns (its last stdout line as
    JSON, stdout + stderr)."""
    path = Path(workdir) / "script.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\n" + textwrap.dedent(script))
    proc = subprocess.run([sys.executable, str(path)], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


def hub_env(endpoint, **extra):
    env = one_thread_env()
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "BERT_READ_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE",
                 "PYTHONPATH"):
        env.pop(name, None)
    return dict(env, HF_ENDPOINT=endpoint, HF_HUB_DISABLE_PROGRESS_BARS="1", **extra)


OURS_ONLINE = """
import json, os, torch, urllib.error, urllib.request
import logging; logging.basicConfig(level=logging.INFO)
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizer
from transformers.configuration_bert import config_file_of

out = {}
model = BertModel.from_pretrained("demo/minilm", cache_dir="cache_a")
tokenizer = BertTokenizer.from_pretrained("demo/minilm", cache_dir="cache_a")
encoded = tokenizer.encode_plus(TEXT)
out["ids"] = encoded["input_ids"]
with torch.no_grad():
    hidden = model(torch.tensor([encoded["input_ids"]])).last_hidden_state
torch.save(hidden, "ours_from_hub.pt")
out["auto"] = [type(AutoConfig.from_pretrained("demo/minilm", cache_dir="cache_a")).__name__,
               type(AutoTokenizer.from_pretrained("demo/minilm", cache_dir="cache_a")).__name__,
               type(AutoModel.from_pretrained("demo/minilm", cache_dir="cache_a")).__name__]
out["config_at_v1"] = config_file_of("demo/minilm", cache_dir="cache_a", revision="v1")
BertModel.from_pretrained("demo/minilm", cache_dir="cache_a", revision=V1_COMMIT)
out["renamed_vocab"] = BertTokenizer.from_pretrained("minilm-base", cache_dir="cache_a").vocab_file
out["shadowed"] = type(BertModel.from_pretrained("demo/shadowed", cache_dir="cache_a")).__name__

out["errors"] = {}
for case, name, options in [("bad_id", "../../no/such/model", {}), ("no_repo", "demo/nothing-here", {}),
                            ("no_revision", "demo/minilm", {"revision": "no-such-branch"}),
                            ("no_weights", "demo/config-only", {})]:
    try:
        BertModel.from_pretrained(name, cache_dir="cache_a", **options)
    except Exception as error:
        out["errors"][case] = [type(error).__name__, str(error)]

import run_classifier
run_classifier.main(RUN_ARGS)

try:
    urllib.request.urlopen(os.environ["HF_ENDPOINT"] + "/offline-from-here")  # a marker in the request log
except urllib.error.HTTPError:
    pass
os.environ["BERT_READ_OFFLINE"] = "1"
out["offline_cached"] = type(BertTokenizer.from_pretrained("demo/minilm", cache_dir="cache_a")).__name__
try:
    BertModel.from_pretrained("demo/config-only-never-fetched", cache_dir="cache_a")
except Exception as error:
    out["errors"]["offline"] = [type(error).__name__, str(error)]
print(json.dumps(out))
"""

ORACLE = """
import json, torch, transformers
out = {}
offline = transformers.AutoModel.from_pretrained("demo/minilm", cache_dir="cache_a", local_files_only=True)
tokenizer = transformers.AutoTokenizer.from_pretrained("demo/minilm", cache_dir="cache_a", local_files_only=True)
ids = tokenizer(TEXT)["input_ids"]
out["ids"] = ids
with torch.no_grad():
    torch.save(offline(torch.tensor([ids])).last_hidden_state, "hf_from_our_cache.pt")
online = transformers.AutoModel.from_pretrained("demo/minilm", cache_dir="cache_b")
transformers.AutoTokenizer.from_pretrained("demo/minilm", cache_dir="cache_b")
with torch.no_grad():
    torch.save(online(torch.tensor([ids])).last_hidden_state, "hf_from_hub.pt")
print(json.dumps(out))
"""

OURS_UNREACHABLE = """
import json, os, torch
import logging; logging.basicConfig(level=logging.WARNING)
from transformers import BertModel, BertTokenizer
out = {}
model = BertModel.from_pretrained("demo/minilm", cache_dir="cache_a")  # the Hub is gone: the cached snapshot
os.environ["BERT_READ_OFFLINE"] = "1"
model = BertModel.from_pretrained("demo/minilm", cache_dir="cache_b")  # what HF transformers downloaded
ids = BertTokenizer.from_pretrained("demo/minilm", cache_dir="cache_b").encode_plus(TEXT)["input_ids"]
with torch.no_grad():
    torch.save(model(torch.tensor([ids])).last_hidden_state, "ours_from_hf_cache.pt")
del os.environ["BERT_READ_OFFLINE"]
os.environ["HF_HUB_OFFLINE"] = "1"
try:
    BertModel.from_pretrained("demo/config-only", cache_dir="cache_b")
except Exception as error:
    out["offline_error"] = [type(error).__name__, str(error)]
print(json.dumps(out))
"""


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def runs(hub, tmp_path_factory):
    """The three subprocesses, in order; what each printed and the folder they shared."""
    work = tmp_path_factory.mktemp("hub")
    shadowed = work / "demo" / "shadowed"  # a local folder of a name the Hub has too: the folder wins
    shadowed.mkdir(parents=True)
    for name in MINILM_FILES:
        (shadowed / name).symlink_to(minilm_dir() / name)
    data = write_generic_task(work / "data", balanced_tweets(4), balanced_tweets(2, start=10))
    run_args = common_args(data, work / "run") + ["--model_name_or_path", "demo/minilm", "--cache_dir", "cache_a",
                                                  "--revision", "main", "--do_train", "--max_steps", "1",
                                                  "--per_gpu_train_batch_size", "2", "--save_steps", "0"]
    values = f"TEXT = {TEXT!r}\nV1_COMMIT = {V1_COMMIT!r}\nRUN_ARGS = {[str(a) for a in run_args]!r}\n"
    ours, ours_output = run_ours(values + OURS_ONLINE, work, hub_env(hub.endpoint, HF_TOKEN=TOKEN))
    requests_online = list(hub.requests)
    oracle = run_oracle_json(values + ORACLE, work, env=hub_env(hub.endpoint, HF_TOKEN=TOKEN))
    unreachable, unreachable_output = run_ours(values + OURS_UNREACHABLE, work,
                                               hub_env(f"http://127.0.0.1:{_closed_port()}"))
    return dict(work=work, ours=ours, ours_output=ours_output, requests_online=requests_online, oracle=oracle,
                unreachable=unreachable, unreachable_output=unreachable_output)


def test_names_load_through_the_hub_client_into_the_hub_cache(runs):
    work, ours = runs["work"], runs["ours"]
    snapshot = work / "cache_a" / "models--demo--minilm" / "snapshots" / MAIN_COMMIT
    assert sorted(os.listdir(snapshot)) == sorted(MINILM_FILES)  # run_classifier fetched the tokenizer's too
    assert (work / "cache_a" / "models--demo--minilm" / "refs" / "main").read_text() == MAIN_COMMIT
    assert ours["auto"] == ["BertConfig", "BertTokenizer", "BertModel"]
    assert ours["ids"] == runs["oracle"]["ids"]


def test_revision_lands_in_its_commits_snapshot(runs):
    work, ours = runs["work"], runs["ours"]
    v1 = work / "cache_a" / "models--demo--minilm" / "snapshots" / V1_COMMIT
    assert Path(ours["config_at_v1"]) == Path(os.path.abspath(v1 / "config.json"))
    assert (v1 / "model.safetensors").is_file()  # revision=<commit> (the same commit, by its hash)
    assert (work / "cache_a" / "models--demo--minilm" / "refs" / "v1").read_text() == V1_COMMIT


def test_a_renamed_repo_is_followed_and_cached_under_the_name_asked_for(runs, hub):
    assert f"models--minilm-base{os.sep}snapshots{os.sep}{MAIN_COMMIT}" in runs["ours"]["renamed_vocab"]
    assert any(r.path.startswith("/minilm-base/resolve/") for r in runs["requests_online"])
    assert any(r.path.startswith("/demo/minilm/resolve/") for r in runs["requests_online"])


def test_a_local_folder_wins_over_the_hub(runs):
    assert runs["ours"]["shadowed"] == "BertModel"  # the Hub's demo/shadowed has no weights
    assert not any("shadowed" in r.path for r in runs["requests_online"])


def test_errors_are_one_line_and_name_what_was_asked(runs, hub):
    errors = runs["ours"]["errors"]
    assert all("\n" not in message for _, message in errors.values())
    kind, message = errors["bad_id"]
    assert message.startswith("../../no/such/model: ") and "not a valid repo id" in message
    assert not any("no/such" in r.path for r in runs["requests_online"])  # refused before any request
    kind, message = errors["no_repo"]
    assert message.startswith("demo/nothing-here: ") and hub.endpoint in message and "HF_TOKEN" in message
    assert message.index(hub.endpoint) > message.index("demo/nothing-here")
    kind, message = errors["no_revision"]
    assert message.startswith("demo/minilm: ") and "revision 'no-such-branch'" in message
    kind, message = errors["no_weights"]
    assert message.startswith("demo/config-only: ")
    assert "model.safetensors" in message and "pytorch_model.bin" in message and "BertModel" in message
    kind, message = errors["offline"]
    assert message.startswith("demo/config-only-never-fetched: ") and "BERT_READ_OFFLINE=1" in message
    assert str(runs["work"] / "cache_a") in message or "cache_a" in message


def test_offline_reads_the_cache_without_a_request(runs, hub):
    assert runs["ours"]["offline_cached"] == "BertTokenizer"
    paths = [r.path for r in runs["requests_online"]]
    marker = paths.index("/offline-from-here")
    assert paths[marker + 1:] == []


def test_the_token_goes_to_the_endpoint_only_and_into_no_file(runs, hub):
    online = runs["requests_online"]
    endpoint_host = hub.endpoint.split("//")[1]
    to_hub = [r for r in online if r.host == endpoint_host and "/resolve/" in r.path]
    to_storage = [r for r in online if r.host != endpoint_host]
    assert to_hub and all(r.authorization == f"Bearer {TOKEN}" for r in to_hub)
    assert to_storage and all(r.authorization == "" for r in to_storage)  # model.safetensors came from there
    assert TOKEN not in runs["ours_output"]
    run_folder = runs["work"] / "run"
    assert (run_folder / "training_args.json").is_file()
    assert json.loads((run_folder / "training_args.json").read_text())["model_name_or_path"] == "demo/minilm"
    written = [path for folder in (run_folder, runs["work"] / "cache_a") for path in folder.rglob("*")
               if path.is_file() and not path.is_symlink()]
    assert written and not [path for path in written if TOKEN.encode() in path.read_bytes()]


def test_hf_transformers_reads_our_cache_and_we_read_its(runs):
    work = runs["work"]
    ours = torch.load(work / "ours_from_hub.pt")
    torch.testing.assert_close(torch.load(work / "hf_from_our_cache.pt"), ours, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.load(work / "ours_from_hf_cache.pt"), torch.load(work / "hf_from_hub.pt"),
                               rtol=0, atol=1e-5)
    assert (work / "cache_b" / "models--demo--minilm" / "snapshots" / MAIN_COMMIT / "model.safetensors").is_file()


def test_an_unreachable_hub_gives_the_cached_snapshot_with_a_warning(runs):
    lines = [line for line in runs["unreachable_output"].splitlines() if "could not be reached" in line]
    assert len(lines) == 1 and lines[0].startswith("WARNING") and "demo/minilm" in lines[0]
    assert MAIN_COMMIT in lines[0]  # the snapshot it used
    kind, message = runs["unreachable"]["offline_error"]
    assert message.startswith("demo/config-only: ") and "HF_HUB_OFFLINE=1" in message and "cache_b" in message


def test_every_from_pretrained_refuses_a_name_that_is_neither_a_path_nor_a_repo_id():
    """In this process, with no Hub at all: the name is refused by the repo-id check, before any request."""
    import transformers
    from transformers.hub import NotARepoId
    loaders = [getattr(transformers, name).from_pretrained for name in (
        "BertConfig", "AlbertConfig", "RobertaConfig", "XLNetConfig", "BertModel", "BertForSequenceClassification",
        "AlbertForSequenceClassification", "RobertaModel", "XLNetForSequenceClassification", "BertTokenizer",
        "AlbertTokenizer", "RobertaTokenizer", "XLNetTokenizer", "AutoConfig", "AutoTokenizer", "AutoModel",
        "AutoModelForSequenceClassification")]
    for load in loaders:
        with pytest.raises(NotARepoId, match=r"^\.\./\.\./no/such/model: .*not a valid repo id"):
            load("../../no/such/model")


def test_a_revision_for_a_local_folder_is_refused_not_ignored():
    """A local folder has no revisions: --revision with it would load the folder as it is, whatever was asked."""
    from transformers import BertConfig
    from transformers.file_utils import BadValueError
    with pytest.raises(BadValueError, match=r": revision 'v1' applies to Hub names only; this is a local path"):
        BertConfig.from_pretrained(str(minilm_dir()), revision="v1")


def test_a_password_in_hf_endpoint_reaches_no_message(tmp_path):
    """HF_ENDPOINT=http://user:PASSWORD@host (a private mirror): the error that names the endpoint hides it."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the Hub cannot be reached
    env = hub_env(f"http://reader:s3cretPASS@127.0.0.1:{port}", HF_HUB_CACHE=str(tmp_path / "cache"))
    path = tmp_path / "script.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\n"
                    "from transformers import BertConfig\nBertConfig.from_pretrained('org/name')\n")
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("transformers.hub.HubError: org/name: not in the hub cache")
    assert f"http://<redacted>@127.0.0.1:{port} could not be reached" in last
    assert "s3cretPASS" not in proc.stdout + proc.stderr
