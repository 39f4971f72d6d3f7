"""write_folder_atomically and recover_folder: replacing a folder never loses it (issue 23, item 5).

A crash is a real one: a child process that calls write_folder_atomically with a `replace` that ends the
process (os._exit, so no cleanup code runs) right after the Nth rename, or in the middle of writing.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _support import REPO_ROOT
from transformers.file_utils import recover_folder, recover_folders_in, replace_path, write_folder_atomically

CRASHING_SAVE = """
import os, sys
from pathlib import Path
from transformers.file_utils import replace_path, write_folder_atomically

path, crash_at = sys.argv[1], sys.argv[2]
renames = []

def replace(source, target):
    replace_path(source, target)
    renames.append(target)
    if crash_at == f"after rename {len(renames)}":
        os._exit(9)

def write(temp):
    Path(temp, "weights.bin").write_text("new")
    if crash_at == "while writing":
        os._exit(9)
    Path(temp, "config.json").write_text("new")

write_folder_atomically(path, write, replace=replace)
"""


def old_folder(path):
    path.mkdir()
    (path / "weights.bin").write_text("old")
    (path / "config.json").write_text("old")
    (path / "only_in_old.txt").write_text("old")


def contents(path):
    return {child.name: child.read_text() for child in sorted(path.iterdir())}


OLD = {"config.json": "old", "only_in_old.txt": "old", "weights.bin": "old"}
NEW = {"config.json": "new", "weights.bin": "new"}


def crash_a_save(path, crash_at):
    done = subprocess.run([sys.executable, "-c", CRASHING_SAVE, str(path), crash_at], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 9, done.stderr


@pytest.mark.parametrize("crash_at, missing_before_recovery, after_recovery", [
    ("while writing", False, OLD),
    ("after rename 1", True, OLD),    # the old folder moved aside, the new one not yet in
    ("after rename 2", False, NEW),   # the new one in, the old one not yet deleted
])
def test_a_crash_at_any_step_leaves_one_whole_folder_after_recovery(tmp_path, caplog, crash_at,
                                                                    missing_before_recovery, after_recovery):
    path = tmp_path / "checkpoint-20"
    old_folder(path)
    crash_a_save(path, crash_at)
    assert path.exists() != missing_before_recovery  # the crash happened where the test says
    assert len(os.listdir(tmp_path)) > 1  # and left something beside the folder

    with caplog.at_level("WARNING", logger="transformers.file_utils"):
        recover_folder(str(path))
    assert contents(path) == after_recovery
    assert os.listdir(tmp_path) == ["checkpoint-20"]
    assert f"{path}: a replacement of this folder was interrupted; " in caplog.text  # said, not done silently


def test_a_crash_while_deleting_the_old_folder_keeps_the_new_one(tmp_path):
    path = tmp_path / "checkpoint-20"
    old_folder(path)
    crash_a_save(path, "after rename 2")
    [aside] = [child for child in tmp_path.iterdir() if child.name != "checkpoint-20"]
    assert aside.name.startswith(".checkpoint-20.old-")
    (aside / "weights.bin").unlink()  # the delete got this far
    recover_folder(str(path))
    assert contents(path) == NEW
    assert os.listdir(tmp_path) == ["checkpoint-20"]


def test_the_next_save_recovers_first(tmp_path):
    """No separate step needed: the next write_folder_atomically of the same path puts things right first."""
    path = tmp_path / "checkpoint-20"
    old_folder(path)
    crash_a_save(path, "after rename 1")
    assert not path.exists()
    write_folder_atomically(str(path), lambda temp: Path(temp, "weights.bin").write_text("newer"))
    assert contents(path) == {"weights.bin": "newer"}
    assert os.listdir(tmp_path) == ["checkpoint-20"]


def test_a_failing_rename_puts_the_old_folder_back_and_raises(tmp_path):
    path = tmp_path / "checkpoint-20"
    old_folder(path)
    renames = []

    def replace(source, target):
        renames.append(target)
        if len(renames) == 2:
            raise OSError("injected: the second rename fails")
        replace_path(source, target)

    with pytest.raises(OSError, match="injected"):
        write_folder_atomically(str(path), lambda temp: Path(temp, "weights.bin").write_text("new"), replace=replace)
    assert contents(path) == OLD
    assert os.listdir(tmp_path) == ["checkpoint-20"]


def test_the_folders_of_a_running_process_are_left_alone(tmp_path):
    """A .NAME.old-PID of a process still alive is that process between its two renames: not ours to move."""
    path = tmp_path / "checkpoint-20"
    running = os.getppid()
    aside = tmp_path / f".checkpoint-20.old-{running}"
    old_folder(aside)
    unfinished = tmp_path / f".checkpoint-20-{running}-0badc0de"
    unfinished.mkdir()
    assert recover_folder(str(path)) == []
    assert sorted(os.listdir(tmp_path)) == sorted([aside.name, unfinished.name])


def test_recovery_touches_only_the_folders_of_its_own_name(tmp_path):
    """checkpoint-2's leftovers are not checkpoint-20's, nor the other way round."""
    (tmp_path / "checkpoint-2").mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(ended.stdout)  # a process that has ended: its leftovers would be fair game
    for name in (f".checkpoint-20.old-{gone}", f".checkpoint-20-{gone}-0badc0de", ".checkpoint-2.old"):
        (tmp_path / name).mkdir()
    recover_folder(str(tmp_path / "checkpoint-2"))
    assert sorted(os.listdir(tmp_path)) == [".checkpoint-2.old", f".checkpoint-20-{gone}-0badc0de",
                                            f".checkpoint-20.old-{gone}", "checkpoint-2"]


def test_recover_folders_in_an_output_folder_recovers_each_checkpoint(tmp_path):
    """What a run calls on its output_dir when it starts: every checkpoint-N left mid-replacement is put right,
    other files are not touched."""
    for name, crash_at in (("checkpoint-10", "after rename 1"), ("checkpoint-20", "after rename 2")):
        old_folder(tmp_path / name)
        crash_a_save(tmp_path / name, crash_at)
    (tmp_path / "eval_results.json").write_text("{}")
    (tmp_path / ".hidden.txt").write_text("kept")
    # checkpoint-10: the old one restored, the unfinished new one removed; checkpoint-20: the old copy removed
    assert len(recover_folders_in(str(tmp_path))) == 3
    assert sorted(os.listdir(tmp_path)) == [".hidden.txt", "checkpoint-10", "checkpoint-20", "eval_results.json"]
    assert contents(tmp_path / "checkpoint-10") == OLD and contents(tmp_path / "checkpoint-20") == NEW
