"""transformers/file_utils.py against real servers on 127.0.0.1: no mocks of requests or boto3.

An http.server in a thread plays the model host. It serves files with ETags the test can change,
a 404, a response that promises more bytes than it sends, and it counts every HEAD and GET, so
"served from the cache" is checked as "the server saw no second GET". moto's server plays S3.
"""
import contextlib
import hashlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
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
    DEADLINE_ENV_VAR,
    MAX_DOWNLOAD_BYTES_ENV_VAR,
    OFFLINE_ENV_VAR,
    ORPHAN_MAX_AGE_S,
    BadValueError,
    DiskFullError,
    DownloadError,
    DownloadLimitError,
    RemoteFileNotFound,
    ServerUnavailable,
    WrongContentError,
    _copy_chunks,
    cache_entry_name,
    cached_path,
    exclusive_lock,
    is_remote_url,
    join_path_or_url,
    redact_url,
    resolve_cache_dir,
)
from transformers.file_utils import main as file_utils_main

REPO_ROOT = Path(__file__).resolve().parent.parent

# Larger than one download chunk, so a file arrives in several pieces. The two versions differ
# everywhere, so any mix-up of versions shows in a byte comparison.
BODY_V1 = bytes(range(256)) * 5000
BODY_V2 = bytes(reversed(range(256))) * 4000
# A `.json` file must parse (a download that does not is refused), so JSON names are served this.
BODY_JSON = json.dumps({"hidden_size": 8, "padding": "x" * 1_500_000}).encode("utf-8")


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

    `framing[path]` changes how a body is delimited: "close" (no Content-Length, the body ends when the
    connection closes), "close-cut" (the same, closing after half), "chunked", "chunked-cut" (half, then
    the connection closes before the last chunk). `status[path]` answers every request with that HTTP
    status instead; `head_status[path]` does so for HEAD alone (a presigned URL refusing HEAD).
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
        self.framing = {}
        self.status = {}
        self.head_status = {}
        self.content_type = {}     # path -> Content-Type header to send
        self.declared = {}         # path -> Content-Length to claim; GET then sends nothing and hangs up
        self.drip = {}             # path -> seconds between the single bytes of its body
        self.stall = {}            # path -> Event: GET sends half, then waits (bounded) for it to be set
        self.server = None


def make_handler(host):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass  # keep pytest's output clean

        def do_HEAD(self):
            self.answer(send_body=False)

        def do_GET(self):
            self.answer(send_body=True)

        def answer(self, send_body):
            # Several tests hang up on purpose mid-body (a size cap, a wrong Content-Type, a deadline): the
            # write that follows then fails, and there is no one left to answer. Without this, socketserver
            # prints each such BrokenPipeError as a traceback in the middle of pytest's output.
            try:
                self.respond(send_body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

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
                status = host.status.get(path) or (None if send_body else host.head_status.get(path))
                framing = host.framing.get(path)
                declared = host.declared.get(path)
                drip = host.drip.get(path)
                stall = host.stall.get(path)
            if declared is not None:
                self.send_response(200)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.close_connection = True
                return
            if status is not None:
                self.send_error(status)
                return
            if found is None:
                self.send_error(404)
                return
            body, etag = found
            half = len(body) // 2
            if framing is not None:
                self.respond_framed(body, etag, framing, send_body)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if etag is not None:
                self.send_header("ETag", etag)
            if path in host.content_type:
                self.send_header("Content-Type", host.content_type[path])
            self.end_headers()
            if not send_body:
                return
            if drip is not None:
                with contextlib.suppress(ConnectionError):  # ends when the client hangs up
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(drip)
                return
            if stall is not None:
                with contextlib.suppress(ConnectionError):  # the client was killed meanwhile
                    self.wfile.write(body[:half])
                    self.wfile.flush()
                    stall.wait(timeout=20)
                    self.wfile.write(body[half:])
                return
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

        def respond_framed(self, body, etag, framing, send_body):
            half = len(body) // 2
            self.close_connection = True
            if framing.startswith("chunked"):
                self.protocol_version = "HTTP/1.1"  # chunked encoding is an HTTP/1.1 feature
            self.send_response(200)
            if framing.startswith("chunked"):
                self.send_header("Transfer-Encoding", "chunked")
            if etag is not None:
                self.send_header("ETag", etag)
            self.end_headers()
            if not send_body:
                return
            if framing == "chunked-endless":  # never ending: until the client hangs up
                piece = body[:65536]
                with contextlib.suppress(ConnectionError):
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                return
            if framing == "close":
                self.wfile.write(body)
            elif framing == "close-cut":
                self.wfile.write(body[:half])
            else:
                for start in range(0, half if framing == "chunked-cut" else len(body), 65536):
                    piece = body[start:min(start + 65536, len(body) if framing == "chunked" else half)]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                if framing == "chunked":
                    self.wfile.write(b"0\r\n\r\n")

    return Handler


@pytest.fixture
def http_host():
    host = ModelHost()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(host))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host.url = f"http://127.0.0.1:{server.server_port}"
    host.server = server
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
    monkeypatch.delenv(OFFLINE_ENV_VAR, raising=False)


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
    # The query (a presigned folder's credential) stays at the end of the joined URL.
    assert join_path_or_url("https://host/folder/?sig=x", "config.json") == "https://host/folder/config.json?sig=x"
    assert join_path_or_url("https://host/folder?sig=x&e=1", "vocab.txt") == "https://host/folder/vocab.txt?sig=x&e=1"


def test_redact_url_hides_query_fragment_and_password():
    assert redact_url("https://host/bert/config.json?X-Amz-Signature=abc&X-Amz-Credential=k") == \
        "https://host/bert/config.json?<redacted>"
    assert redact_url("https://user:pw@host:8080/bert/vocab.txt#token=t") == \
        "https://<redacted>@host:8080/bert/vocab.txt#<redacted>"
    assert redact_url("s3://bucket/bert/model.safetensors") == "s3://bucket/bert/model.safetensors"


def test_cache_dir_argument_beats_env_var_beats_default(tmp_path, monkeypatch):
    assert resolve_cache_dir(tmp_path / "arg") == str(tmp_path / "arg")
    assert resolve_cache_dir(None) == str(tmp_path / "env-cache")
    monkeypatch.delenv(CACHE_ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir(None) == str(tmp_path / "home" / ".cache" / "bert_read_step_to_step")


# ----- http:// -----

def test_http_file_is_downloaded_and_cached(http_host, tmp_path):
    http_host.files["/bert/config.json"] = (BODY_JSON, '"v1"')
    url = http_host.url + "/bert/config.json"

    path = cached_path(url, cache_dir=tmp_path / "cache")

    assert Path(path).read_bytes() == BODY_JSON
    assert Path(path).parent == tmp_path / "cache"
    assert Path(path).name == sha256(url) + "." + sha256('"v1"')
    sidecar = json.loads(Path(path + ".json").read_text(encoding="utf-8"))
    assert sidecar == {"url": url, "etag": '"v1"', "size": len(BODY_JSON),
                       "sha256": hashlib.sha256(BODY_JSON).hexdigest()}
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


# Each process imports transformers.file_utils alone: the package imports its modules on first use, so
# neither torch nor the model code is loaded (seconds per process); this test is only about the download
# and the lock.
TWO_PROCESS_SCRIPT = """
import sys
sys.path.insert(0, {repo_root!r})
from transformers import file_utils
assert "torch" not in sys.modules
print(file_utils.cached_path({url!r}, cache_dir={cache!r}))
"""


def test_two_processes_at_once_download_once(http_host, tmp_path):
    http_host.files["/gated.bin"] = (BODY_V1, '"v1"')
    url = http_host.url + "/gated.bin"
    script = TWO_PROCESS_SCRIPT.format(repo_root=str(REPO_ROOT),
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


# ----- what the cache can be trusted for -----

def entry_for(url, etag, cache):
    return Path(cache) / cache_entry_name(url, etag)


@pytest.mark.parametrize("framing", ["close-cut", "close"])
def test_no_content_length_and_no_chunking_is_refused_never_cached(http_host, tmp_path, framing):
    # Without Content-Length or chunked encoding a body ends when the connection closes, so a server
    # that dies halfway ("close-cut") looks exactly like one that sent it all ("close").
    http_host.files["/model.bin"] = (BODY_V1, '"v1"')
    http_host.framing["/model.bin"] = framing
    url = http_host.url + "/model.bin"

    for attempt in range(2):  # and the second call does not find a half file either
        with pytest.raises(DownloadError, match="neither Content-Length nor chunked"):
            cached_path(url, cache_dir=tmp_path / "cache")
    assert http_host.gets["/model.bin"] == 2
    assert files_in(tmp_path / "cache") == [entry_for(url, '"v1"', tmp_path / "cache").name + ".lock"]


def test_chunked_body_is_accepted_whole_and_refused_cut(http_host, tmp_path):
    http_host.files["/whole.bin"] = (BODY_V1, '"v1"')
    http_host.framing["/whole.bin"] = "chunked"
    assert Path(cached_path(http_host.url + "/whole.bin", cache_dir=tmp_path / "cache")).read_bytes() == BODY_V1

    http_host.files["/cut.bin"] = (BODY_V1, '"v1"')
    http_host.framing["/cut.bin"] = "chunked-cut"
    with pytest.raises(DownloadError, match="cut.bin failed"):
        cached_path(http_host.url + "/cut.bin", cache_dir=tmp_path / "cache")
    assert not entry_for(http_host.url + "/cut.bin", '"v1"', tmp_path / "cache").exists()


def test_damaged_cached_file_is_fetched_again_with_a_warning(http_host, tmp_path, caplog):
    http_host.files["/model.bin"] = (BODY_V1, '"v1"')
    url = http_host.url + "/model.bin"
    path = cached_path(url, cache_dir=tmp_path / "cache")
    with open(path, "r+b") as f:  # cut by hand, as a full disk or a killed copy would
        f.truncate(1000)

    with caplog.at_level(logging.WARNING, logger="transformers.file_utils"):
        again = cached_path(url, cache_dir=tmp_path / "cache")

    assert again == path
    assert Path(again).read_bytes() == BODY_V1
    assert http_host.gets["/model.bin"] == 2
    assert f"is 1000 bytes on disk but {len(BODY_V1)} bytes were downloaded" in caplog.text
    assert url in caplog.text


def test_verify_command_finds_a_damaged_file_of_the_right_size(http_host, tmp_path, capsys):
    http_host.files["/good.bin"] = (BODY_V1, '"v1"')
    http_host.files["/bad.bin"] = (BODY_V2, '"v2"')
    cache = tmp_path / "cache"
    good = cached_path(http_host.url + "/good.bin", cache_dir=cache)
    bad = cached_path(http_host.url + "/bad.bin", cache_dir=cache)
    with open(bad, "r+b") as f:  # one flipped byte: the size check cannot see it, the hash can
        f.seek(5000)
        f.write(bytes([BODY_V2[5000] ^ 0xFF]))

    command = [sys.executable, "-m", "transformers.file_utils", "verify", "--cache_dir", str(cache)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"ok  {http_host.url}/good.bin  {good}" in result.stdout
    assert f"BAD {http_host.url}/bad.bin  {bad}" in result.stdout
    assert "has sha256" in result.stdout and "2 cached files" in result.stdout and "1 damaged" in result.stdout

    # The same command in this process (one subprocess above shows `python -m` works; more would be slow).
    assert file_utils_main(command[3:] + ["--delete"]) == 1
    assert not Path(bad).exists() and Path(good).exists()
    assert Path(cached_path(http_host.url + "/bad.bin", cache_dir=cache)).read_bytes() == BODY_V2
    capsys.readouterr()
    assert file_utils_main(command[3:]) == 0, capsys.readouterr().out


def stop(host):
    host.server.shutdown()
    host.server.server_close()


def test_unreachable_server_with_a_warm_cache_uses_it_with_a_warning(http_host, tmp_path, caplog):
    http_host.files["/bert/config.json"] = (BODY_JSON, '"v1"')
    url = http_host.url + "/bert/config.json?token=SECRET"
    path = cached_path(url, cache_dir=tmp_path / "cache")
    os.utime(path, (time.time() - 3 * 3600, time.time() - 3 * 3600))  # downloaded three hours ago

    http_host.status["/bert/config.json"] = 503
    with caplog.at_level(logging.WARNING, logger="transformers.file_utils"):
        assert cached_path(url, cache_dir=tmp_path / "cache") == path
    assert "HTTP 503" in caplog.text and "cached 3 h ago" in caplog.text

    stop(http_host)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transformers.file_utils"):
        assert cached_path(url, cache_dir=tmp_path / "cache") == path
    assert f"could not reach {http_host.url}/bert/config.json?<redacted>" in caplog.text
    assert "cached 3 h ago" in caplog.text
    assert "SECRET" not in caplog.text

    # force_download means "not the cached copy": with no server that is an error.
    with pytest.raises(ServerUnavailable, match="could not reach"):
        cached_path(url, cache_dir=tmp_path / "cache", force_download=True)


def test_local_files_only_and_the_offline_env_var_never_touch_the_network(http_host, tmp_path, monkeypatch):
    http_host.files["/old.bin"] = (BODY_V1, '"v1"')
    url = http_host.url + "/old.bin"
    old = cached_path(url, cache_dir=tmp_path / "cache")
    os.utime(old, (time.time() - 60, time.time() - 60))
    http_host.files["/old.bin"] = (BODY_V2, '"v2"')
    new = cached_path(url, cache_dir=tmp_path / "cache")
    requests_seen = len(http_host.targets)

    # The newest whole version, whatever its ETag; no request at all.
    assert cached_path(url, cache_dir=tmp_path / "cache", local_files_only=True) == new
    monkeypatch.setenv(OFFLINE_ENV_VAR, "1")
    assert cached_path(url, cache_dir=tmp_path / "cache") == new
    with pytest.raises(DownloadError, match=rf"{http_host.url}/never.bin is not in the cache .*{OFFLINE_ENV_VAR}=1"):
        cached_path(http_host.url + "/never.bin", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="force_download=True"):
        cached_path(url, cache_dir=tmp_path / "cache", force_download=True)
    # A damaged copy is not served offline either: the older whole one is.
    with open(new, "r+b") as f:
        f.truncate(10)
    assert cached_path(url, cache_dir=tmp_path / "cache") == old
    assert len(http_host.targets) == requests_seen

    monkeypatch.setenv(OFFLINE_ENV_VAR, "maybe")
    with pytest.raises(ValueError, match=f"{OFFLINE_ENV_VAR}='maybe'"):
        cached_path(url, cache_dir=tmp_path / "cache")


def test_a_404_is_remembered_for_offline_use(http_host, tmp_path):
    # So an optional file (tokenizer_config.json) that a server does not have is still "not there"
    # offline, rather than "not cached".
    url = http_host.url + "/bert/tokenizer_config.json"
    with pytest.raises(RemoteFileNotFound):
        cached_path(url, cache_dir=tmp_path / "cache")
    with pytest.raises(RemoteFileNotFound, match="HTTP 404 when last asked"):
        cached_path(url, cache_dir=tmp_path / "cache", local_files_only=True)
    http_host.files["/bert/tokenizer_config.json"] = (BODY_JSON, '"v1"')
    cached_path(url, cache_dir=tmp_path / "cache")
    assert Path(cached_path(url, cache_dir=tmp_path / "cache", local_files_only=True)).read_bytes() == BODY_JSON


class Terminal(io.StringIO):
    def isatty(self):
        return True  # so tqdm draws its bar here, as it would for a person


def messages_a_traceback_shows(error):
    """The message lines of `error` and of every exception a traceback would print with it (the chain);
    not the source lines, which here are the test's own."""
    text = ""
    while error is not None:
        text += "".join(traceback.format_exception_only(type(error), error))
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return text


def test_query_string_is_never_printed_or_stored(http_host, tmp_path, caplog, monkeypatch):
    http_host.files["/bert/config.json"] = (BODY_JSON, '"v1"')
    url = http_host.url + "/bert/config.json?token=SECRET"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    with caplog.at_level(logging.INFO, logger="transformers.file_utils"):
        path = cached_path(url, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == BODY_JSON
    assert http_host.targets[-1] == "/bert/config.json?token=SECRET"  # the server did get the token
    assert f"downloading {http_host.url}/bert/config.json?<redacted>" in caplog.text
    assert "config.json" in terminal.getvalue()  # the progress bar was drawn, labelled by file name
    sidecar = json.loads(Path(path + ".json").read_text(encoding="utf-8"))
    assert sidecar["url"] == http_host.url + "/bert/config.json?<redacted>"

    errors = []
    for missing in ("/bert/missing.json?token=SECRET", "/bert/config.json?token=SECRET&x=1"):
        http_host.status["/bert/config.json"] = 403
        with pytest.raises(DownloadError) as caught:
            cached_path(http_host.url + missing, cache_dir=tmp_path / "cache")
        errors.append(caught.value)
    stop(http_host)
    with pytest.raises(DownloadError) as caught:
        cached_path(http_host.url + "/other.json?token=SECRET", cache_dir=tmp_path / "cache")
    errors.append(caught.value)
    assert "404" in str(errors[0]) and "403" in str(errors[1]) and "could not reach" in str(errors[2])

    printed = caplog.text + terminal.getvalue() + "".join(map(messages_a_traceback_shows, errors))
    assert "SECRET" not in printed
    assert all("SECRET" not in p.read_text(errors="replace") for p in (tmp_path / "cache").glob("*.json"))


@pytest.mark.parametrize("refusal", [403, 405])
def test_head_refused_falls_back_to_get(http_host, tmp_path, refusal):
    http_host.files["/presigned.bin"] = (BODY_V1, '"v1"')
    http_host.head_status["/presigned.bin"] = refusal
    url = http_host.url + "/presigned.bin"

    path = cached_path(url, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == BODY_V1
    assert Path(path).name == cache_entry_name(url, '"v1"')  # the ETag came from GET's headers
    assert cached_path(url, cache_dir=tmp_path / "cache") == path
    # Each call: one refused HEAD, one GET for the headers; the first call one more GET for the body.
    assert http_host.heads["/presigned.bin"] == 2 and http_host.gets["/presigned.bin"] == 3


def test_orphaned_incomplete_files_are_removed_by_the_next_download(http_host, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    orphan = cache / ("a" * 64 + ".tmp123.incomplete")  # a download killed two days ago
    orphan.write_bytes(b"half")
    two_days_ago = time.time() - 2 * ORPHAN_MAX_AGE_S
    os.utime(orphan, (two_days_ago, two_days_ago))
    live = cache / ("b" * 64 + ".tmp456.incomplete")  # another process's download, still going
    live.write_bytes(b"growing")

    http_host.files["/vocab.txt"] = (BODY_V1, '"v1"')
    cached_path(http_host.url + "/vocab.txt", cache_dir=cache)

    assert not orphan.exists()
    assert live.exists()


# ----- limits: size, time, interruption, wrong content, file modes -----

def no_entry_and_no_partial(cache):
    """Nothing of a download is left: no entry, sidecar or `.incomplete` file (a lock file may stay)."""
    return all(name.endswith(".lock") for name in files_in(cache))


def test_declared_size_above_the_cap_is_refused_before_reading(http_host, tmp_path, monkeypatch):
    http_host.files["/model.safetensors"] = (BODY_V1, '"v1"')
    url = http_host.url + "/model.safetensors?token=SECRET"
    monkeypatch.setenv(MAX_DOWNLOAD_BYTES_ENV_VAR, "1000000")
    with pytest.raises(DownloadLimitError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert f"{http_host.url}/model.safetensors?<redacted>" in message and "SECRET" not in message
    assert f"declares {len(BODY_V1):,} bytes" in message and "1,000,000 bytes" in message
    assert f"set {MAX_DOWNLOAD_BYTES_ENV_VAR} to a larger number" in message
    assert no_entry_and_no_partial(tmp_path / "cache")

    monkeypatch.setenv(MAX_DOWNLOAD_BYTES_ENV_VAR, str(10 * len(BODY_V1)))
    assert Path(cached_path(url, cache_dir=tmp_path / "cache")).read_bytes() == BODY_V1


def test_endless_body_is_cut_at_the_size_cap(http_host, tmp_path, monkeypatch):
    http_host.files["/vocab.txt"] = (BODY_V1, '"v1"')
    http_host.framing["/vocab.txt"] = "chunked-endless"
    monkeypatch.setenv(MAX_DOWNLOAD_BYTES_ENV_VAR, "3000000")
    with pytest.raises(DownloadLimitError) as caught:
        cached_path(http_host.url + "/vocab.txt", cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert http_host.url + "/vocab.txt" in message and "grew past 3,000,000 bytes" in message
    assert MAX_DOWNLOAD_BYTES_ENV_VAR in message
    assert no_entry_and_no_partial(tmp_path / "cache")


def test_body_longer_than_declared_is_cut_and_refused(tmp_path):
    # urllib3 stops reading at Content-Length by itself; botocore or an older urllib3 may not.
    with open(tmp_path / "out", "wb") as out, pytest.raises(DownloadLimitError, match="more than the 10 bytes"):
        _copy_chunks(iter([b"x" * 8, b"x" * 8]), 10, "https://host/bert/vocab.txt", out)
    assert (tmp_path / "out").stat().st_size == 8  # the chunk that would pass the declared size is not written


def test_declared_size_the_disk_cannot_hold_is_refused_before_writing(http_host, tmp_path, monkeypatch):
    http_host.files["/model.safetensors"] = (BODY_V1, '"v1"')
    http_host.declared["/model.safetensors"] = 10**15  # a petabyte: more than this disk has free
    monkeypatch.setenv(MAX_DOWNLOAD_BYTES_ENV_VAR, str(10**16))
    with pytest.raises(DiskFullError) as caught:
        cached_path(http_host.url + "/model.safetensors", cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith(f"download of {http_host.url}/model.safetensors: no space left on device")
    assert f"needs {10**15:,} bytes" in message and "\n" not in message
    assert no_entry_and_no_partial(tmp_path / "cache")


@pytest.mark.parametrize("name, value", [(MAX_DOWNLOAD_BYTES_ENV_VAR, "lots"), (DEADLINE_ENV_VAR, "-5"),
                                         (DEADLINE_ENV_VAR, "0")])
def test_a_bad_limit_value_is_one_readable_line(http_host, tmp_path, monkeypatch, name, value):
    http_host.files["/vocab.txt"] = (BODY_V1, '"v1"')
    monkeypatch.setenv(name, value)
    with pytest.raises(BadValueError, match=f"{name}='{value}': expected a positive number"):
        cached_path(http_host.url + "/vocab.txt", cache_dir=tmp_path / "cache")


def test_slow_drip_is_stopped_by_the_deadline(http_host, tmp_path, monkeypatch):
    # One byte every 0.3 s: each byte resets the per-read timeout, so only the deadline can stop it.
    http_host.files["/model.safetensors"] = (b"w" * 40, '"v1"')
    http_host.drip["/model.safetensors"] = 0.3
    monkeypatch.setenv(DEADLINE_ENV_VAR, "1.5")
    with pytest.raises(DownloadLimitError) as caught:
        cached_path(http_host.url + "/model.safetensors", cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert http_host.url + "/model.safetensors" in message
    assert f"deadline of 1.5 s ({DEADLINE_ENV_VAR})" in message and "bytes received" in message
    received = int(message.split(" bytes received")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert 0 < received < 40  # stopped mid-body, with what had arrived counted
    assert no_entry_and_no_partial(tmp_path / "cache")


KILLED_DOWNLOAD = """
import sys
from transformers.file_utils import cached_path
cached_path(sys.argv[1], cache_dir=sys.argv[2])
"""


def test_download_killed_by_sigkill_leaves_no_partial_file_after_the_next_success(http_host, tmp_path):
    http_host.files["/model.safetensors"] = (BODY_V1, '"v1"')
    release = threading.Event()
    http_host.stall["/model.safetensors"] = release  # half the body, then nothing until released
    url, cache = http_host.url + "/model.safetensors", tmp_path / "cache"
    child = subprocess.Popen([sys.executable, "-c", KILLED_DOWNLOAD, url, str(cache)], cwd=REPO_ROOT)
    try:
        for _ in range(600):  # the child has started writing (half the body, in small reads or one)
            partial = [p for p in cache.glob("*.incomplete")] if cache.exists() else []
            if partial or child.poll() is not None:
                break
            time.sleep(0.05)
        assert partial, "the child never started its download"
        child.kill()  # SIGKILL: no handler, no finally, nothing of the child's runs
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert partial[0].exists()  # left behind, as only a killed process leaves it

    del http_host.stall["/model.safetensors"]  # the server is fixed: the next call gets the whole file
    release.set()
    path = cached_path(url, cache_dir=cache)
    assert Path(path).read_bytes() == BODY_V1
    assert not list(cache.glob("*.incomplete"))


def test_partials_of_other_versions_are_removed_unless_their_download_is_alive(http_host, tmp_path):
    url, cache = http_host.url + "/vocab.txt", tmp_path / "cache"
    cache.mkdir()
    dead = cache / (cache_entry_name(url, '"v0"') + ".abc123.incomplete")  # its process died a minute ago
    dead.write_bytes(b"half")
    alive_entry = cache_entry_name(url, '"v9"')
    alive = cache / (alive_entry + ".def456.incomplete")
    alive.write_bytes(b"growing")
    http_host.files["/vocab.txt"] = (BODY_V1, '"v1"')
    with exclusive_lock(str(cache / (alive_entry + ".lock"))):  # its download is still going
        cached_path(url, cache_dir=cache)
    assert not dead.exists()
    assert alive.exists()


def test_captive_portal_html_is_refused_then_the_fixed_server_is_used(http_host, tmp_path):
    portal = b"<!DOCTYPE html><html><body>Please log in to the guest Wi-Fi</body></html>"
    http_host.files["/bert/config.json"] = (portal, '"portal"')
    http_host.content_type["/bert/config.json"] = "text/html; charset=utf-8"
    url = http_host.url + "/bert/config.json"
    with pytest.raises(WrongContentError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith(url) and "text/html" in message and "b'<!DOCTYPE html>" in message
    assert no_entry_and_no_partial(tmp_path / "cache")

    # Even a model file that would accept any bytes: HTML is never a weights file.
    http_host.files["/bert/model.safetensors"] = (portal, '"portal"')
    http_host.content_type["/bert/model.safetensors"] = "text/html"
    with pytest.raises(WrongContentError, match="HTML page"):
        cached_path(http_host.url + "/bert/model.safetensors", cache_dir=tmp_path / "cache")

    http_host.files["/bert/config.json"] = (BODY_JSON, '"v1"')  # the network is fixed
    http_host.content_type["/bert/config.json"] = "application/json"
    assert Path(cached_path(url, cache_dir=tmp_path / "cache")).read_bytes() == BODY_JSON


def test_json_file_that_does_not_parse_is_refused_and_not_cached(http_host, tmp_path):
    http_host.files["/bert/config.json"] = (b"Service temporarily unavailable", '"v1"')
    url = http_host.url + "/bert/config.json"
    with pytest.raises(WrongContentError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")
    assert url in str(caught.value) and "not valid JSON" in str(caught.value)
    assert "b'Service temporarily unavailable'" in str(caught.value)
    assert no_entry_and_no_partial(tmp_path / "cache")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_cached_files_get_the_mode_the_umask_gives(http_host, tmp_path, umask, mode):
    http_host.files["/vocab.txt"] = (BODY_V1, '"v1"')
    http_host.status["/missing.txt"] = 404
    old = os.umask(umask)
    try:
        path = cached_path(http_host.url + "/vocab.txt", cache_dir=tmp_path / "cache")
        with pytest.raises(RemoteFileNotFound):
            cached_path(http_host.url + "/missing.txt", cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    marker = tmp_path / "cache" / (sha256(http_host.url + "/missing.txt") + ".404")
    for written in (path, path + ".json", path + ".lock", marker):
        assert oct(os.stat(written).st_mode & 0o777) == oct(mode), written


def test_password_in_the_url_is_never_printed_or_stored(http_host, tmp_path, caplog, monkeypatch):
    port = urlsplit(http_host.url).port
    base = f"http://alice:TOKEN123@127.0.0.1:{port}"
    http_host.files["/bert/vocab.txt"] = (BODY_V1, '"v1"')
    http_host.files["/bert/config.json"] = (b"<html>", '"p"')
    http_host.content_type["/bert/config.json"] = "text/html"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    errors = []
    with caplog.at_level(logging.INFO, logger="transformers.file_utils"):
        cached_path(base + "/bert/vocab.txt", cache_dir=tmp_path / "cache")
        for name in ("/bert/config.json", "/bert/missing.bin"):
            with pytest.raises(DownloadError) as caught:
                cached_path(base + name, cache_dir=tmp_path / "cache")
            errors.append(caught.value)
    assert f"http://<redacted>@127.0.0.1:{port}/bert/config.json" in str(errors[0])
    assert "vocab.txt" in terminal.getvalue()
    printed = caplog.text + terminal.getvalue() + "".join(map(messages_a_traceback_shows, errors))
    assert "TOKEN123" not in printed and "alice" not in printed
    assert all("TOKEN123" not in p.read_text(errors="replace") for p in (tmp_path / "cache").glob("*.json"))
    assert all("TOKEN123" not in p.read_text(errors="replace") for p in (tmp_path / "cache").glob("*.404"))


def test_a_cache_that_cannot_be_written_names_the_url(http_host, tmp_path):
    http_host.files["/vocab.txt"] = (BODY_V1, '"v1"')
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    with pytest.raises(DownloadError) as caught:
        cached_path(http_host.url + "/vocab.txt?token=SECRET", cache_dir=not_a_folder)
    message = str(caught.value)
    assert message.startswith(f"download of {http_host.url}/vocab.txt?<redacted> into the cache {not_a_folder}")
    assert "SECRET" not in message


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
    assert isinstance(caught.value, RemoteFileNotFound)
    assert files_in(tmp_path / "cache") == [sha256(url) + ".404"]  # no entry; only "it was missing"


def test_s3_sidecar_offline_and_unreachable(s3_bucket, tmp_path, monkeypatch, caplog):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="bert/vocab.txt", Body=BODY_V1)
    url = f"s3://{bucket}/bert/vocab.txt"
    path = cached_path(url, cache_dir=tmp_path / "cache")
    sidecar = json.loads(Path(path + ".json").read_text(encoding="utf-8"))
    assert sidecar["size"] == len(BODY_V1) and sidecar["sha256"] == hashlib.sha256(BODY_V1).hexdigest()

    assert cached_path(url, cache_dir=tmp_path / "cache", local_files_only=True) == path

    with socket.socket() as s:  # nothing listens here any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with caplog.at_level(logging.WARNING, logger="transformers.file_utils"):
        assert cached_path(url, cache_dir=tmp_path / "cache") == path
    assert f"could not reach {url}" in caplog.text and "cached" in caplog.text


def test_s3_object_above_the_size_cap_is_refused(s3_bucket, tmp_path, monkeypatch):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="bert/model.safetensors", Body=BODY_V1)
    url = f"s3://{bucket}/bert/model.safetensors"
    monkeypatch.setenv(MAX_DOWNLOAD_BYTES_ENV_VAR, "100000")
    with pytest.raises(DownloadLimitError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert url in message and "100,000 bytes" in message and MAX_DOWNLOAD_BYTES_ENV_VAR in message
    assert not any(name.endswith(".json") or name.endswith(".incomplete") for name in files_in(tmp_path / "cache"))

    monkeypatch.setenv(MAX_DOWNLOAD_BYTES_ENV_VAR, str(len(BODY_V1)))  # raised: exactly the file's size is allowed
    assert Path(cached_path(url, cache_dir=tmp_path / "cache")).read_bytes() == BODY_V1


def test_s3_download_past_the_deadline_is_stopped(s3_bucket, tmp_path, monkeypatch):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="bert/model.safetensors", Body=BODY_V1)
    url = f"s3://{bucket}/bert/model.safetensors"
    monkeypatch.setenv(DEADLINE_ENV_VAR, "0.000001")  # over before the first byte can arrive
    with pytest.raises(DownloadLimitError) as caught:
        cached_path(url, cache_dir=tmp_path / "cache")
    assert url in str(caught.value) and DEADLINE_ENV_VAR in str(caught.value)
    assert "bytes received" in str(caught.value)
    assert not any(name.endswith(".json") or name.endswith(".incomplete") for name in files_in(tmp_path / "cache"))
