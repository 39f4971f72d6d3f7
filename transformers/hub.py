"""Reading path, stop 6, step 1 of `from_pretrained` (find files), for a name: turn a Hub name into a local folder.

    "/data/bert-base-chinese"        a folder or file that exists   -> used as it is (a local path always wins)
    "https://host/bert/", "s3://..." a URL                          -> file_utils.cached_path, as before
    "hfl/chinese-roberta-wwm-ext"    anything else: a Hub repo id   -> the files this class reads, fetched with
    "bert-base-chinese"                                                huggingface_hub into the hub cache, and
                                                                       the snapshot folder that holds them

For a name, three lines do the work:

    validate_repo_id(name)                                    # "../../x" is refused before any request
    for file in the files the class reads:                    # config.json, model.safetensors, vocab.txt, ...
        path = hf_hub_download(name, file, revision=...)      # -> <cache>/models--org--name/snapshots/<commit>/file
    return os.path.dirname(path)                              # the folder every from_pretrained already reads

The client is the Hub's own (`huggingface_hub`), so everything behaves as in HF transformers and shares its
cache: `HF_HOME` / `HF_HUB_CACHE` (or `cache_dir=`) name the cache, `HF_ENDPOINT` the server (a mirror such
as https://hf-mirror.com), `HF_TOKEN` the token for private or gated repos, which the client sends to the
endpoint only, never to the storage host a large file is redirected to. The name goes to the client
unchanged: the Hub answers an old name ("bert-base-chinese") by redirecting to the new one
("google-bert/bert-base-chinese"), and the cache folder keeps the name that was asked for, as in HF.

Offline: `local_files_only=True`, or any of HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, BERT_READ_OFFLINE set to 1,
reads the cached snapshot and makes no request. A Hub that cannot be reached (no connection, a timeout, a 5xx)
while the snapshot is cached gives that snapshot, with a WARNING. BERT_READ_CACHE is the cache of URLs
(cached_path) only; Hub files always go to the hub cache.
"""
import logging
import os
from types import MappingProxyType

from .file_utils import OFFLINE_ENV_VAR, BadValueError, UserError, is_remote_url, offline_mode, redact_url

logger = logging.getLogger(__name__)

# The variables that turn the network off for Hub names, in the order they are named in errors.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", OFFLINE_ENV_VAR)


class HubError(UserError, OSError):
    """A Hub name could not be turned into files: the message names the repo id first, then what failed."""


class NotARepoId(HubError, FileNotFoundError):
    """Neither an existing path nor a valid repo id (a missing local folder usually lands here)."""


def is_hub_name(name):
    """True when `name` is to be looked up on the Hub: not an existing local path and not a URL."""
    name = os.fspath(name)
    return not os.path.exists(name) and not is_remote_url(name)


def offline_reason(local_files_only=False):
    """What turned the network off for Hub names ("HF_HUB_OFFLINE=1 turns the network off"), or None.

    huggingface_hub reads HF_HUB_OFFLINE once, when it is imported; we read the variables on every call
    and pass local_files_only=True to the client, so setting BERT_READ_OFFLINE=1 (or HF_HUB_OFFLINE=1) in a
    running process works too.
    """
    if local_files_only:
        return "local_files_only=True forbids the network"
    for variable in OFFLINE_VARIABLES[:2]:
        if os.environ.get(variable, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{variable}={os.environ[variable]} turns the network off"
    if offline_mode():
        return f"{OFFLINE_ENV_VAR}={os.environ[OFFLINE_ENV_VAR]} turns the network off"
    return None


def local_model_path(name, layouts, optional=(), what="this model", revision=None, cache_dir=None,
                     force_download=False, local_files_only=False):
    """`name` as something on this machine: unchanged when it is a local path or a URL, else the snapshot
    folder of Hub repo `name` holding the first of `layouts` the repo has, and whichever `optional` files it has.

    layouts: the sets of files `what` reads, best first, e.g. for a model
        (("config.json", "model.safetensors"), ("config.json", "pytorch_model.bin")).
    revision: a branch, tag or commit (default "main"); cache_dir: the hub cache (default HF_HUB_CACHE).
    """
    if not name:
        return name
    if not is_hub_name(name):
        if revision and revision != "main":  # a local copy or a URL has no revisions: say so, not ignore it
            raise BadValueError(f"{name}: revision {revision!r} applies to Hub names only; this is a local path "
                                "or a URL")
        return name
    return snapshot_folder(os.fspath(name), layouts, optional, what, revision, cache_dir, force_download,
                           local_files_only)


def snapshot_folder(name, layouts, optional=(), what="this model", revision=None, cache_dir=None,
                    force_download=False, local_files_only=False):
    """The local snapshot folder of Hub repo `name` at `revision`; see `local_model_path`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise NotARepoId(f"{name}: not a local folder or file, and not a valid repo id for the Hub "
                         "(org/name or name: letters, digits, '-', '_', '.')") from None
    revision = revision or "main"
    offline = offline_reason(local_files_only)
    unreachable = offline is None and not _hub_answers(name, layouts[0][0], revision)
    if unreachable:
        offline = f"{_endpoint()} could not be reached"
    if offline and force_download:
        raise HubError(f"{name}: force_download=True asks for the Hub, but {offline}")
    download = _downloader(name, revision, cache_dir, force_download, offline is not None)

    folder = None
    for layout in layouts:
        paths = [download(file) for file in layout]
        if all(paths):
            folder = os.path.dirname(paths[0])
            break
    if folder is None:
        wanted = ", or ".join(" + ".join(layout) for layout in layouts)
        if offline:
            raise HubError(f"{name}: not in the hub cache, and {offline} (needed {wanted}; cache folder "
                           f"{_cache_folder(cache_dir)})")
        raise HubError(f"{name}: the repo has no files {what} can read at revision {revision!r}; "
                       f"it needs {wanted}")
    for file in optional:
        download(file)
    if unreachable:
        logger.warning("%s: %s; using the cached snapshot %s", name, offline, folder)
    return folder


def _downloader(name, revision, cache_dir, force_download, local_files_only):
    """file -> its local path, or None when the repo (or, offline, the cache) does not have it."""
    import huggingface_hub
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    def download(file):
        try:
            return huggingface_hub.hf_hub_download(name, file, revision=revision, cache_dir=cache_dir,
                                                   force_download=force_download, local_files_only=local_files_only)
        except LocalEntryNotFoundError:
            # Not cached, and either offline (then "not there" is the answer) or the request failed: a file
            # skipped for a dropped connection would load the model with other settings, so that stops.
            if local_files_only:
                return None
            raise HubError(f"{name}: {file} could not be fetched from {_endpoint()} and is not in the hub cache "
                           f"{_cache_folder(cache_dir)}; try again, or check the connection") from None
        except EntryNotFoundError:  # online, and the repo has no such file
            return None
        except GatedRepoError:
            raise HubError(f"{name}: a gated repo at {_endpoint()}; accept its terms on the Hub and set HF_TOKEN "
                           "to a token of that account") from None
        except RepositoryNotFoundError:
            raise HubError(f"{name}: not a local folder or file here, and no such repo at {_endpoint()} (a "
                           "private or gated repo needs HF_TOKEN set to a token that may read it)") from None
        except RevisionNotFoundError:
            raise HubError(f"{name}: revision {revision!r} not found at {_endpoint()} "
                           "(give a branch, tag or commit of the repo)") from None

    return download


def _hub_answers(name, file, revision):
    """Whether the endpoint answers a HEAD for one of the repo's files: any answer but no connection, a
    timeout or a 5xx. hf_hub_download itself falls back to the cache silently; asking first is what lets
    us say so in a WARNING."""
    import httpx2  # the client's HTTP library (huggingface_hub 2.x): its TransportError is "no answer"
    import huggingface_hub
    from huggingface_hub.errors import FileMetadataError, HfHubHTTPError, OfflineModeIsEnabled

    url = huggingface_hub.hf_hub_url(name, file, revision=revision)
    try:
        huggingface_hub.get_hf_file_metadata(url)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        return status is not None and status < 500
    except (httpx2.TransportError, FileMetadataError, OfflineModeIsEnabled):
        return False
    return True


def _endpoint():
    """HF_ENDPOINT as it may be shown: a password in it (https://user:pw@mirror) never reaches a message."""
    import huggingface_hub.constants
    return redact_url(huggingface_hub.constants.ENDPOINT)


def _cache_folder(cache_dir):
    import huggingface_hub.constants
    return os.path.expanduser(os.fspath(cache_dir)) if cache_dir else huggingface_hub.constants.HF_HUB_CACHE


# The files each kind of from_pretrained reads from a repo, best first (see each class for the order's why).
CONFIG_LAYOUTS = (("config.json",),)
MODEL_LAYOUTS = (("config.json", "model.safetensors"), ("config.json", "pytorch_model.bin"))
TOKENIZER_FILES = ("tokenizer_config.json", "vocab.txt", "tokenizer.json", "vocab.json", "merges.txt",
                   "spiece.model", "special_tokens_map.json")


# ---- transformers 2.x's shortcut names ----
# 2.x knew its models by short names ("bert-base-chinese") and mapped each to files on S3 that are gone now.
# The Hub still answers every one of them, by redirecting to the repo it moved to: these tables say where.
# The name itself is what goes to the client (see the module docstring), so the map is for reading and for
# 2.x scripts, which list its keys in --help (`pretrained_config_archive_map`, `pretrained_model_archive_map`,
# `pretrained_vocab_files_map`).
def _moved_to(org, names):
    return {name: f"{org}/{name}" for name in names}


SHORTCUT_NAMES = {
    "bert": MappingProxyType(_moved_to("google-bert", (
        "bert-base-uncased", "bert-large-uncased", "bert-base-cased", "bert-large-cased",
        "bert-base-multilingual-uncased", "bert-base-multilingual-cased", "bert-base-chinese",
        "bert-base-german-cased", "bert-large-uncased-whole-word-masking", "bert-large-cased-whole-word-masking",
        "bert-large-uncased-whole-word-masking-finetuned-squad",
        "bert-large-cased-whole-word-masking-finetuned-squad", "bert-base-cased-finetuned-mrpc",
        "bert-base-german-dbmdz-cased", "bert-base-german-dbmdz-uncased"))),
    "roberta": MappingProxyType({**_moved_to("FacebookAI", ("roberta-base", "roberta-large", "roberta-large-mnli")),
                                 "distilroberta-base": "distilbert/distilroberta-base",
                                 **_moved_to("openai-community", ("roberta-base-openai-detector",
                                                                  "roberta-large-openai-detector"))}),
    "albert": MappingProxyType(_moved_to("albert", tuple(f"albert-{size}-v{version}" for version in (1, 2)
                                                         for size in ("base", "large", "xlarge", "xxlarge")))),
    "xlnet": MappingProxyType(_moved_to("xlnet", ("xlnet-base-cased", "xlnet-large-cased"))),
}
