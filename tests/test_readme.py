"""The commands in README.md, docs/*.md and the Chinese guide run as written.

Every ```bash block in these pages carries a marker on the line before its fence:
    <!-- setup -->                 README only: sets MODEL and DATA and prepares the demo data; run once, first
    <!-- quick: expects TEXT -->   a quick command; it must exit 0 and print TEXT (stdout or stderr)
    <!-- not run: REASON -->      cannot run here (a download by hand, minutes of training); REASON is shown
A bash block with none of these fails the test, so no command in the docs can be left to rot unseen. Each quick
block runs in bash (-e, pipefail) in a scratch folder that links to this repository's code, after the setup
block's variable lines, so what it writes (data, outputs/, cache files) stays out of the checkout. A command that
appears in several pages (the English page and its Chinese counterpart) runs once and is checked for each page's
text. The scripts' --help texts are checked here too: a reader learns the defaults from them.
"""
import os
import re
import subprocess
import sys

import pytest

from _support import REPO_ROOT

MARKER = re.compile(r"^<!-- (setup|quick: expects (.+?)|not run: (.+?)) -->$")
CODE = ("run_classifier.py", "transformers", "bert_read_step_to_step")
# The test command of README's Command 2: exactly what .ci/run runs (there as python3, the CI machine's name).
TEST_COMMAND = "python -m pytest -q tests"


def bash_blocks(text):
    """[(line number of the fence, kind, detail, script)] of every ```bash block, in order. kind is "setup",
    "quick" (detail: the expected text), "not run" (detail: the reason) or None (no marker on the line before)."""
    lines = text.split("\n")
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != "```bash":
            continue
        end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == "```")
        script = "\n".join(lines[number + 1:end]) + "\n"
        marker = MARKER.match(lines[number - 1].strip()) if number else None
        if marker is None:
            kind, detail = None, None
        elif marker.group(1) == "setup":
            kind, detail = "setup", None
        elif marker.group(2) is not None:
            kind, detail = "quick", marker.group(2)
        else:
            kind, detail = "not run", marker.group(3)
        blocks.append((number + 1, kind, detail, script))
    return blocks


def doc_pages():
    """README.md and every page under docs/, the Chinese ones included."""
    return [REPO_ROOT / "README.md"] + sorted((REPO_ROOT / "docs").glob("**/*.md"))


def page_name(path):
    return str(path.relative_to(REPO_ROOT))


BLOCKS = [(page_name(page), *block) for page in doc_pages()
          for block in bash_blocks(page.read_text(encoding="utf-8"))]
SETUP = [script for page, _, kind, _, script in BLOCKS if kind == "setup" and page == "README.md"]
QUICK = {}  # script -> [(page, expected text)]
for _page, _line, _kind, _detail, _script in BLOCKS:
    if _kind == "quick":
        QUICK.setdefault(_script, []).append((_page, _detail))
NOT_RUN = [(f"{page}:{line}", reason) for page, line, kind, reason, _ in BLOCKS if kind == "not run"]


def test_every_bash_block_in_the_docs_is_marked():
    unmarked = [f"{page}:{line}" for page, line, kind, _, _ in BLOCKS if kind is None]
    assert not unmarked, ("these ```bash blocks have no <!-- quick: expects TEXT --> or <!-- not run: REASON --> "
                          f"on the line before: {unmarked}")
    assert all(reason.strip() for _, reason in NOT_RUN)
    misplaced = [f"{page}:{line}" for page, line, kind, _, _ in BLOCKS if kind == "setup" and page != "README.md"]
    assert not misplaced, f"only README.md has the setup block: {misplaced}"


def test_bash_blocks_are_found_with_their_markers():
    text = ("a `<!-- quick: expects TEXT -->` in prose\n\n<!-- quick: expects ok -->\n```bash\necho ok\n```\n"
            "<!-- not run: needs Google's download -->\n```bash\nwget x\n```\n"
            "```bash\necho unmarked\n```\n")
    assert bash_blocks(text) == [(4, "quick", "ok", "echo ok\n"), (8, "not run", "needs Google's download", "wget x\n"),
                                 (11, None, None, "echo unmarked\n")]


def test_the_readme_has_its_setup_block_and_the_ci_test_command():
    """One setup block that defines MODEL and DATA; Command 2 is exactly the command .ci/run runs; the quick
    blocks cover the article's line, --list_keys, the selector examples and the step demos."""
    assert len(SETUP) == 1 and "MODEL=" in SETUP[0] and "DATA=" in SETUP[0]
    readme_scripts = [script for page, _, _, _, script in BLOCKS if page == "README.md"]
    assert any(TEST_COMMAND in script.splitlines() for script in readme_scripts)
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND.replace("python ", "python3 ", 1) in ci
    scripts = "\n".join(QUICK)
    for command in ("bert_read_step_to_step.article_line", "--list_keys", "--reinit_keys 'bert.encoder.layer.[45].*'",
                    "bert_read_step_to_step.tasks", "transformers.tokenization_bert", "bert_read_step_to_step.features",
                    "transformers.configuration_bert", "transformers.modeling_bert"):
        assert command in scripts, command


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder with links to the code, where the setup block has run; and the lines that set its variables."""
    folder = tmp_path_factory.mktemp("readme")
    for name in CODE:
        os.symlink(REPO_ROOT / name, folder / name)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PATH=os.path.dirname(sys.executable)
               + os.pathsep + os.environ.get("PATH", ""))
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", SETUP[0]], cwd=folder, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (folder / "data" / "tweets" / "test.tsv").is_file()
    assignments = "\n".join(line for line in SETUP[0].splitlines() if re.match(r"^[A-Z_]+=", line))
    return folder, env, assignments


@pytest.mark.parametrize("script", list(QUICK),
                         ids=[f"{QUICK[script][0][0]}: {script.splitlines()[0][:50]}" for script in QUICK])
def test_quick_block_runs_as_written(scratch, script):
    folder, env, assignments = scratch
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", assignments + "\n" + script], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{script}\n--- stderr:\n{run.stderr[-3000:]}"
    for page, expects in QUICK[script]:
        printed = run.stdout + run.stderr
        assert expects in printed, f"{page}: {script}\n--- printed:\n{printed[-3000:]}"


@pytest.mark.parametrize("where, reason", NOT_RUN, ids=[where for where, _ in NOT_RUN])
def test_not_run_block(where, reason):
    pytest.skip(f"not run: {reason}")


# ---- --help shows the defaults ---------------------------------------------------------------------------

def flag_help(help_text, flag):
    """The help lines of one flag, joined into one line (argparse wraps them)."""
    match = re.search(rf"^  {re.escape(flag)}\b(.*?)(?=^  -|^\S|\Z)", help_text, re.S | re.M)
    assert match, flag
    return " ".join(match.group(1).split())


# Flags whose default is None or "" (or that are required): their help says in words what happens.
NO_VALUE_DEFAULT = {
    "run_classifier": {"--data_dir", "--model_type", "--model_name_or_path", "--task_name", "--output_dir",
                       "--config_name", "--tokenizer_name", "--cache_dir", "--text_b_column", "--reinit_std",
                       "--resume_from_checkpoint"},
    "reinit_sweep": {"--data_dir", "--model_name_or_path", "--threads_per_run", "--dask_scheduler",
                     "--slurm_partition"},
    "prepare_demo_data": set(),
}


@pytest.mark.parametrize("name", sorted(NO_VALUE_DEFAULT))
def test_every_help_shows_the_defaults(name, capsys):
    import run_classifier
    from bert_read_step_to_step import prepare_demo_data, reinit_sweep

    parse = {"run_classifier": run_classifier.parse_args, "reinit_sweep": reinit_sweep.parse_args,
             "prepare_demo_data": prepare_demo_data.main}[name]
    with pytest.raises(SystemExit):
        parse(["--help"])
    help_text = capsys.readouterr().out
    flags = sorted(set(re.findall(r"^  (--\w+)", help_text, re.M)))
    assert len(flags) >= 5
    for flag in flags:
        if flag in NO_VALUE_DEFAULT[name]:
            assert "(default: None)" not in flag_help(help_text, flag), flag
        else:
            assert "(default: " in flag_help(help_text, flag), (flag, flag_help(help_text, flag))
    if name == "run_classifier":
        assert "(default: 5e-05)" in flag_help(help_text, "--learning_rate")
        assert "(default: 42)" in flag_help(help_text, "--seed")
