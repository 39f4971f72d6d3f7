"""The README's commands run as written.

README.md marks blocks with an HTML comment on the line before the fence:
    <!-- setup -->                 sets MODEL and DATA and prepares the demo data; run once, first
    <!-- quick: expects TEXT -->   a quick command; it must exit 0 and print TEXT (stdout or stderr)
Each quick block runs in bash (-e, pipefail) in a scratch folder that links to this repository's code, after the
setup block's variable lines, so what it writes (data, outputs/, cache files) stays out of the checkout. The
scripts' --help texts are checked here too: a reader learns the defaults from them.
"""
import os
import re
import subprocess
import sys

import pytest

from _support import REPO_ROOT

MARKED_BLOCK = re.compile(r"^<!-- (setup|quick(?:: expects ([^\n]*?))?) -->\n```bash\n(.*?)^```", re.S | re.M)
CODE = ("run_classifier.py", "transformers", "bert_read_step_to_step")


def readme_blocks(text):
    """[(kind, expected text or None, script)] of the marked blocks, in the README's order."""
    return [(kind.split(":")[0], expects, script) for kind, expects, script in MARKED_BLOCK.findall(text)]


BLOCKS = readme_blocks((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
SETUP = [script for kind, _, script in BLOCKS if kind == "setup"]
QUICK = [(expects, script) for kind, expects, script in BLOCKS if kind == "quick"]


def test_the_readme_marks_its_setup_and_quick_blocks():
    """One setup block that defines MODEL and DATA; quick blocks for the article's line, --list_keys, the
    selector examples and the step demos, each with the text it must print."""
    assert len(SETUP) == 1 and "MODEL=" in SETUP[0] and "DATA=" in SETUP[0]
    scripts = "\n".join(script for _, script in QUICK)
    for command in ("bert_read_step_to_step.article_line", "--list_keys", "--reinit_keys 'bert.encoder.layer.[45].*'",
                    "bert_read_step_to_step.tasks", "transformers.tokenization_bert", "bert_read_step_to_step.features",
                    "transformers.configuration_bert", "transformers.modeling_bert"):
        assert command in scripts, command
    assert all(expects for expects, _ in QUICK)


def test_readme_blocks_are_found_by_their_marker():
    text = ("a `<!-- quick: expects TEXT -->` in prose\n\n<!-- quick: expects ok -->\n```bash\necho ok\n```\n"
            "```bash\necho unmarked\n```\n")
    assert readme_blocks(text) == [("quick", "ok", "echo ok\n")]


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


@pytest.mark.parametrize("expects, script", QUICK, ids=[script.split("\n")[0][:60] for _, script in QUICK])
def test_quick_readme_block_runs_as_written(scratch, expects, script):
    folder, env, assignments = scratch
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", assignments + "\n" + script], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{script}\n--- stderr:\n{run.stderr[-3000:]}"
    assert expects in run.stdout + run.stderr, f"{script}\n--- printed:\n{(run.stdout + run.stderr)[-3000:]}"


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
    "reinit_sweep": {"--data_dir", "--model_name_or_path"},
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
