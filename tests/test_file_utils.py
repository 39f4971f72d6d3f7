"""transformers/file_utils.py against real servers on 127.0.0.1: no mocks of requests or boto3.

An http.server in a thread plays the model host. It serves files with ETags the test can change,
a 404, a response that promises more bytes than it sends, and it counts every HEAD and GET, so
"served from the cache" is checked as "the server saw no second GET". moto's server plays S3.
"""
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer

from transformers.file_utils import (
    CACHE_ENV_VAR,
    DownloadError,
    _copy_chunks,
    cache_entry_name,
    cached_path,
    is_remote_url,
    join_path_or_url,
    resolve_cache_dir,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Larger than one download chunk, so a file arrives in several pieces. The two versions differ
# everywhere, so any mix-up of versions shows in a byte comparison.
BODY_V1 = bytes(range(256)) * 5000
BODY_V2 = bytes(reversed(range(256))) * 4000


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).exists() else []


# ----- the HTTP model host -----

class ModelHost:
    """What the test server serves and what it has seen. Tests edit `files` between calls.

    Paths with special behaviour:
      /truncated.bin  GET sends Content-Length for the whole body, then half of it, then hangs up.
      /gated.bin      GET sends half, then waits (bounded) until a second HEAD for it has arrived,
                      so a second process is known to ask while the first is still downloading; then
                      it holds the rest back a moment longer (or until a second GET shows up), so
                      that second process gets as far as it can before the first one finishes.
    """

    def __init__(self):
        self.url = None
        self.files = {}            # path -> (body, ETag or None)
        self.heads = Counter()     # path -> number of HEAD requests
        self.gets = Counter()      # path -> number of GET requests
        self.targets = []          # request targets as sent; absolute URLs when we act as a proxy
        self.lock = threading.Lock()
        self.second_head_arrived = threading.Event()
        self.second_get_arrived = threading.Event()
        self.gate_opened_by_second_head = None


def make_handler(host):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass  # keep pytest's output clean

        def do_HEAD(self):
            self.respond(send_body=False)

        def do_GET(self):
            self.respond(send_body=True)

        def respond(self, send_body):
            path = urlsplit(self.path).path
            with host.lock:
                host.targets.append(self.path)
                (host.gets if send_body else host.heads)[path] += 1
                if path == "/gated.bin" and host.heads[path] >= 2:
                    host.second_head_arrived.set()
                if path == "/gated.bin" and host.gets[path] >= 2:
                    host.second_get_arrived.set()
                found = host.files.get(path)
            if found is None:
                self.send_error(404)
                return
            body, etag = found
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if etag is not None:
                self.send_header("ETag", etag)
            self.end_headers()
            if not send_body:
                return
            half = len(body) // 2
            if path == "/truncated.bin":
                self.wfile.write(body[:half])
                self.close_connection = True
                return
            if path == "/gated.bin":
                self.wfile.write(body[:half])
                self.wfile.flush()
                host.gate_opened_by_second_head = host.second_head_arrived.wait(timeout=20)
                host.second_get_arrived.wait(timeout=0.5)
                self.wfile.write(body[half:])
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def http_host():
    host = ModelHost()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(host))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host.url = f"http://127.0.0.1:{server.server_port}"
    yield host
    host.second_head_arrived.set()  # release a gated handler, if a failed test left one waiting
    host.second_get_arrived.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No proxy from the environment, and a default cache inside tmp_path, never in ~."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "env-cache"))


# ----- local paths and names -----

def test_local_path_is_returned_as_it_is(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n", encoding="utf-8")
    assert cached_path(str(vocab)) == str(vocab)
    assert cached_path(vocab) == str(vocab)
    assert files_in(tmp_path / "env-cache") == []  # nothing was copied


def test_missing_local_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model" / "config.json"
    with pytest.raises(FileNotFoundError, match="no-such-model/config.json"):
        cached_path(str(missing))


def test_unknown_scheme_is_named():
    with pytest.raises(ValueError, match="'ftp'"):
        cached_path("ftp://example.org/bert/config.json")


def test_is_remote_url():
    assert is_remote_url("https://host/bert/config.json")
    assert is_remote_url("http://host/bert/config.json")
    assert is_remote_url("s3://bucket/bert/config.json")
    assert not is_remote_url("/models/bert/config.json")
    assert not is_remote_url("bert/config.json")
    assert not is_remote_url(Path("/models/bert"))


def test_join_path_or_url():
    assert join_path_or_url("/models/bert", "config.json") == os.path.join("/models/bert", "config.json")
    assert join_path_or_url(Path("/models/bert"), "vocab.txt") == os.path.join("/models/bert", "vocab.txt")
    assert join_path_or_url("https://host/bert", "vocab.txt") == "https://host/bert/vocab.txt"
    assert join_path_or_url("https://host/bert/", "vocab.txt") == "https://host/bert/vocab.txt"
    assert join_path_or_url("s3://bucket/bert", "model.safetensors") == "s3://bucket/bert/model.safetensors"
    assert join_path_or_url("s3://bucket/bert/", "model.safetensors") == "s3://bucket/bert/model.safetensors"


def test_cache_dir_argument_beats_env_var_beats_default(tmp_path, monkeypatch):
    assert resolve_cache_dir(tmp_path / "arg") == str(tmp_path / "arg")
    assert resolve_cache_dir(None) == str(tmp_path / "env-cache")
    monkeypatch.delenv(CACHE_ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir(None) == str(tmp_path / "home" / ".cache" / "bert_read_step_to_step")


# ----- http:// -----

def test_http_file_is_downloaded_and_cached(http_host, tmp_path):
    http_host.files["/bert/config.json"] = (BODY_V1, '"v1"')
    url = http_host.url + "/bert/config.json"

    path = cached_path(url, cache_dir=tmp_path / "cache")

    assert Path(path).read_bytes() == BODY_V1
    assert Path(path).parent == tmp_path / "cache"
    assert Path(path).name == sha256(url) + "." + sha256('"v1"')
    sidecar = json.loads(Path(path + ".json").read_text(encoding="utf-8"))
    assert sidecar == {"url": url, "etag": '"v1"'}
    assert http_host.gets["/bert/config.json"] == 1


def test_env_var_cache_dir_is_used_when_no_argument(http_host, tmp_path):
    http_host.files["/vocab.txt"] = (BODY_V1, '"v1"')
    path = cached_path(http_host.url + "/vocab.txt")
    assert Path(path).parent == tmp_path / "env-cache"


def test_second_call_asks_for_the_etag_but_does_not_download_again(http_host, tmp_path):
    http_host.files["/model.bin"] = (BODY_V1, '"v1"')
    url = http_host.url + "/model.bin"

    first = cached_path(url, cache_dir=tmp_path / "cache")
    second = cached_path(url, cache_dir=tmp_path / "cache")

    assert first == second
    assert http_host.heads["/model.bin"] == 2
    assert http_host.gets["/model.bin"] == 1


def test_changed_etag_downloads_the_new_version(http_host, tmp_path):
    url = http_host.url + "/model.bin"
    http_host.files["/model.bin"] = (BODY_V1, '"v1"')
    old = cached_path(url, cache_dir=tmp_path / "cache")

    http_host.files["/model.bin"] = (BODY_V2, '"v2"')
    new = cached_path(url, cache_dir=tmp_path / "cache")

    assert new != old
    assert Path(new).read_bytes() == BODY_V2
    assert Path(old).read_bytes() == BODY_V1  # the old version stays, under its own name
    assert http_host.gets["/model.bin"] == 2


def test_force_download_fetches_again(http_host, tmp_path):
    http_host.files["/model.bin"] = (BODY_V1, '"v1"')
    url = http_host.url + "/model.bin"
    first = cached_path(url, cache_dir=tmp_path / "cache")

    again = cached_path(url, cache_dir=tmp_path / "cache", force_download=True)

    assert again == first
    assert Path(again).read_bytes() == BODY_V1
    assert http_host.gets["/model.bin"] == 2


def test_without_etag_the_file_is_kept_until_forced(http_host, tmp_path):
    http_host.files["/vocab.txt"] = (BODY_V1, None)
    url = http_host.url + "/vocab.txt"

    path = cached_path(url, cache_dir=tmp_path / "cache")
    assert Path(path).name == sha256(url)
    assert cached_path(url, cache_dir=tmp_path / "cache") == path
    assert http_host.gets["/vocab.txt"] == 1

    http_host.files["/vocab.txt"] = (BODY_V2, None)
    assert Path(cached_path(url, cache_dir=tmp_path / "cache", force_download=True)).read_bytes() == BODY_V2
    assert http_host.gets["/vocab.txt"] == 2


def test_404_names_the_url_and_status(http_host, tmp_path):
    url = http_host.url + "/no-such-model/config.json"
    with pytest.raises(DownloadError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")
    assert url in str(caught.value)
    assert "404" in str(caught.value)
    assert isinstance(caught.value, OSError)


def test_connection_dropped_halfway_leaves_no_entry_and_no_temp_file(http_host, tmp_path):
    http_host.files["/truncated.bin"] = (BODY_V1, '"v1"')
    url = http_host.url + "/truncated.bin"

    with pytest.raises(DownloadError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")

    assert url in str(caught.value)
    assert http_host.gets["/truncated.bin"] == 1
    # Only the lock file remains: no entry, no sidecar, no *.incomplete.
    assert files_in(tmp_path / "cache") == [sha256(url) + "." + sha256('"v1"') + ".lock"]


def test_short_stream_is_an_error_even_without_urllib3_noticing():
    # urllib3 2 raises by itself when the server hangs up early (the test above); urllib3 1.x ends the
    # stream quietly. The byte count in _copy_chunks catches both.
    with pytest.raises(DownloadError, match=r"http://host/model.bin is incomplete: got 4 of 10 bytes"):
        _copy_chunks(iter([b"ab", b"cd"]), 10, "http://host/model.bin", io.BytesIO())


def test_unreachable_server_names_the_url(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/bert/config.json"
    with pytest.raises(DownloadError, match=f"could not reach {url}"):
        cached_path(url, cache_dir=tmp_path / "cache")


def test_proxies_are_passed_to_requests(http_host, tmp_path):
    # The host name cannot resolve (.invalid is reserved), so the download can only succeed if requests
    # sends it to the proxy, which then sees the absolute URL in the request line.
    http_host.files["/bert/vocab.txt"] = (BODY_V1, '"v1"')
    url = "http://model-host.invalid/bert/vocab.txt"

    path = cached_path(url, cache_dir=tmp_path / "cache", proxies={"http": http_host.url})

    assert Path(path).read_bytes() == BODY_V1
    assert http_host.targets == [url, url]  # HEAD, then GET


# Each process loads file_utils.py on its own: importing the `transformers` package would also import
# torch and the model code, seconds per process, and this test is only about the download and the lock.
TWO_PROCESS_SCRIPT = """
import importlib.util
spec = importlib.util.spec_from_file_location("file_utils", {module_file!r})
file_utils = importlib.util.module_from_spec(spec)
spec.loader.exec_module(file_utils)
print(file_utils.cached_path({url!r}, cache_dir={cache!r}))
"""


def test_two_processes_at_once_download_once(http_host, tmp_path):
    http_host.files["/gated.bin"] = (BODY_V1, '"v1"')
    url = http_host.url + "/gated.bin"
    script = TWO_PROCESS_SCRIPT.format(module_file=str(REPO_ROOT / "transformers" / "file_utils.py"),
                                       url=url, cache=str(tmp_path / "cache"))

    processes = [subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    paths = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            paths.append(out.strip())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    # The second process asked while the first was mid-download, yet only one GET happened:
    # it waited on the lock and then found the finished entry.
    assert http_host.gate_opened_by_second_head is True
    assert http_host.heads["/gated.bin"] == 2
    assert http_host.gets["/gated.bin"] == 1
    assert paths[0] == paths[1]
    assert Path(paths[0]).read_bytes() == BODY_V1
    entry = sha256(url) + "." + sha256('"v1"')
    assert files_in(tmp_path / "cache") == [entry, entry + ".json", entry + ".lock"]


# ----- s3:// against moto's server -----

@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch, tmp_path):
    """A fresh bucket on the moto server; boto3 finds the server only through the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    bucket = "bert-read-" + uuid.uuid4().hex[:12]
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_object_is_downloaded_and_cached(s3_bucket, tmp_path):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="bert/model.safetensors", Body=BODY_V1)
    url = f"s3://{bucket}/bert/model.safetensors"
    etag = client.head_object(Bucket=bucket, Key="bert/model.safetensors")["ETag"]

    path = cached_path(url, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == BODY_V1
    assert Path(path).name == cache_entry_name(url, etag) == sha256(url) + "." + sha256(etag)

    # Not fetched again: a download would rename a new file into place, giving a new inode.
    inode = os.stat(path).st_ino
    assert cached_path(url, cache_dir=tmp_path / "cache") == path
    assert os.stat(path).st_ino == inode

    assert cached_path(url, cache_dir=tmp_path / "cache", force_download=True) == path
    assert os.stat(path).st_ino != inode


def test_s3_changed_object_is_fetched_again(s3_bucket, tmp_path):
    client, bucket = s3_bucket
    url = f"s3://{bucket}/bert/vocab.txt"
    client.put_object(Bucket=bucket, Key="bert/vocab.txt", Body=BODY_V1)
    old = cached_path(url, cache_dir=tmp_path / "cache")

    client.put_object(Bucket=bucket, Key="bert/vocab.txt", Body=BODY_V2)
    new = cached_path(url, cache_dir=tmp_path / "cache")

    assert new != old
    assert Path(new).read_bytes() == BODY_V2
    assert Path(old).read_bytes() == BODY_V1


def test_s3_missing_key_names_the_url(s3_bucket, tmp_path):
    _, bucket = s3_bucket
    url = f"s3://{bucket}/no-such-model/config.json"
    with pytest.raises(DownloadError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")
    assert url in str(caught.value)
    assert "404" in str(caught.value)
    assert files_in(tmp_path / "cache") == []
