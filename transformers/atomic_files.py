"""Writing files and folders that survive a crash: atomic, durable, and recovered after an interrupted replace.

Every model, checkpoint, results file and cache entry the repository writes goes through `write_atomically`
(one file) or `write_folder_atomically` (a folder), and every rename through `replace_path`. In: a path and a
function that writes the content to a temporary path. Out: the path holding either the old content or the
whole new one, whatever happened in between (a crash, Ctrl-C, a full disk).

A model, a checkpoint, a results file is written under a temporary name beside its real name and renamed
into place once complete: a rename within one folder is atomic, so a reader sees the old file or the whole
new one. Atomic is not yet durable: after a power cut the rename may be on disk while the file's bytes are
not (an empty model.safetensors), or the rename itself may be lost. So the file is fsync'ed before the
rename and its folder after it.
"""
import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
import tempfile

from .errors import UserError

logger = logging.getLogger(__name__)


class DiskFullError(UserError, OSError):
    """The device has no room for a file we must write (ENOSPC, or a free-space check before writing).
    The message names the path and, where known, the bytes needed; see `disk_full_error`."""


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


# Replacing a folder takes two renames, because a rename cannot replace a folder that holds files. Between
# them there is a moment when `path` does not exist; the old folder then waits beside it under a name
# recover_folder knows, so that a crash at any point leaves a complete folder to read:
#
#   write(.NAME-PID-xxxxxxxx)   crash here: NAME is the old folder; the unfinished new one is removed
#   NAME -> .NAME.old-PID       crash here: NAME is missing; the old folder is renamed back
#   .NAME-PID-xxxxxxxx -> NAME  crash here: both are complete; the old one is deleted
#   delete .NAME.old-PID        crash here: the rest of the old one is deleted
#
# The PID in both names lets recover_folder leave alone the folders of a process that is still writing.

def _new_folder_name(name):
    return f".{name}-{os.getpid()}-{secrets.token_hex(4)}"


def _old_folder_name(name):
    return f".{name}.old-{os.getpid()}"


def _process_is_alive(pid):
    if pid == os.getpid():
        return False  # our own leftovers come from an earlier call that failed: nothing of ours is writing now
    try:
        os.kill(pid, 0)  # signal 0 sends nothing, it only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _leftover_folders(path):
    """[(kind, pid, full path)] for the .NAME-PID-xxxxxxxx ("new") and .NAME.old-PID ("old") folders beside
    `path`. The eight hex digits keep checkpoint-4's new folder from reading as one of checkpoint's."""
    parent, name = os.path.split(os.path.abspath(path))
    new, old = re.compile(rf"\.{re.escape(name)}-(\d+)-[0-9a-f]{{8}}"), re.compile(rf"\.{re.escape(name)}\.old-(\d+)")
    found = []
    for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        for kind, pattern in (("new", new), ("old", old)):
            match = pattern.fullmatch(entry)
            if match:
                found.append((kind, int(match.group(1)), os.path.join(parent, entry)))
    return found


def recover_folder(path):
    """Finish or undo a write_folder_atomically of `path` that a crash interrupted; return what it did.

    `path` missing and an old copy beside it: the old copy is renamed back. `path` present: old copies
    are deleted. Unfinished new folders are deleted. Folders of a process that is still running are left
    alone. write_folder_atomically calls this first; call it on a run's output folder when a run starts.
    """
    done = []
    leftovers = [(kind, folder) for kind, pid, folder in _leftover_folders(path) if not _process_is_alive(pid)]
    olds = [folder for kind, folder in leftovers if kind == "old"]
    if olds and not os.path.exists(path):
        # The newest by modification time is the last folder that stood at `path`.
        newest = max(olds, key=os.path.getmtime)
        replace_path(newest, path)
        _fsync_path(os.path.dirname(os.path.abspath(path)))
        done.append(f"restored {path} from {os.path.basename(newest)}")
        olds.remove(newest)
    for folder in olds + [folder for kind, folder in leftovers if kind == "new"]:
        shutil.rmtree(folder, ignore_errors=True)
        done.append(f"removed {os.path.basename(folder)}")
    if done:
        logger.warning("%s: a replacement of this folder was interrupted; %s", path, ", ".join(done))
    return done


# .NAME-PID-xxxxxxxx or .NAME.old-PID: the NAME a leftover belongs to (NAME may itself hold dots and dashes).
LEFTOVER_FOLDER = re.compile(r"\.(?P<name>.+)(-\d+-[0-9a-f]{8}|\.old-\d+)")


def recover_folders_in(parent):
    """recover_folder for every folder of `parent` that left a replacement unfinished (a run's output_dir,
    with its checkpoint-N folders, when the run starts); return what was done."""
    if not os.path.isdir(parent):
        return []
    names = sorted({match.group("name") for entry in os.listdir(parent)
                    for match in [LEFTOVER_FOLDER.fullmatch(entry)] if match})
    return [step for name in names for step in recover_folder(os.path.join(parent, name))]


def write_folder_atomically(path, write, replace=replace_path):
    """Call write(temp_folder), then move the finished folder to `path` (replacing one that is there), durably.

    A crash at any point leaves `path` as either the whole old folder or the whole new one (after
    recover_folder, which runs first here). `replace` is replace_path; a test passes a wrapper to stop
    between two renames.
    """
    recover_folder(path)
    parent, name = os.path.split(os.path.abspath(path))
    temp = os.path.join(parent, _new_folder_name(name))
    old = os.path.join(parent, _old_folder_name(name))
    os.mkdir(temp)  # with the permissions of any folder the user creates
    try:
        write(temp)
        for folder, _, files in os.walk(temp):
            for file_name in files:
                _fsync_path(os.path.join(folder, file_name))
            _fsync_path(folder)
        if os.path.exists(path):  # e.g. a checkpoint saved before by a run that was resumed from an earlier one
            replace(path, old)
        replace(temp, path)
        _fsync_path(parent)  # both renames on disk before the old folder goes
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        recover_folder(path)  # the old folder back at `path` if it was moved aside
        raise
    shutil.rmtree(old, ignore_errors=True)
