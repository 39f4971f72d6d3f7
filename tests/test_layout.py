"""The house's floors: every import points down.

    transformers/             the library            imports only itself and third-party packages
    bert_read_step_to_step/   the task side          may import the library
    run_classifier.py, benchmarks/, tests/           may import both

Read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""
import ast
import subprocess
import sys

import pytest

from _support import REPO_ROOT

FLOORS = {"transformers": 0, "bert_read_step_to_step": 1}  # anything else of ours is a top-level script
OUR_TOP_LEVEL = {"transformers", "bert_read_step_to_step", "run_classifier", "benchmarks", "tests"}


def imported_modules(path):
    """Top-level names of the modules a file imports (relative imports stay in the same package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_every_import_points_down(package):
    upward = []
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for module, line in imported_modules(path):
            if module in OUR_TOP_LEVEL and FLOORS.get(module, 2) > FLOORS[package]:
                upward.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {module}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The test above would pass on an empty list: show it finds the kind of line it forbids."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef run():\n    import run_classifier\n    from transformers import x\n")
    assert list(imported_modules(sample)) == [("os", 1), ("run_classifier", 4), ("transformers", 5)]


# ---- inside the library: no module imports its way back to itself ------------------------------------------

def package_imports(path, package="transformers"):
    """{module of the same package that the file imports: the first line doing so}, at the top or in a function.

    `from .x import y`, `from . import x`, `from transformers.x import y` and `import transformers.x` all count.
    """
    siblings = {sibling.stem for sibling in path.parent.glob("*.py")}
    found = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == package:
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(package + "."):
            names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".")[1] for alias in node.names if alias.name.startswith(package + ".")]
        for name in names:
            if name in siblings and name != path.stem:
                found[name] = min(found.get(name, node.lineno), node.lineno)
    return found


def import_graph(folder):
    """{module: {module it imports: line}} for every *.py of one package folder."""
    return {path.stem: package_imports(path, folder.name) for path in sorted(folder.glob("*.py"))}


def find_cycle(graph):
    """One import circle as [a, b, ..., a], or None when the graph has none (depth-first search)."""
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_the_library_imports_in_no_circle():
    """A circle means one of its modules belongs a floor higher (STYLE.md); an import inside a function to dodge
    the circle at import time is still a circle, so those count too."""
    graph = import_graph(REPO_ROOT / "transformers")
    cycle = find_cycle(graph)
    assert cycle is None, "import circle in transformers/: " + " -> ".join(
        f"{module}.py:{graph[module][after]}" for module, after in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}.py"


def test_the_2x_adapter_sits_above_what_it_adapts():
    """compat_2x.py imports modeling_utils.py and tokenization_utils.py at its top; they, and no module they
    import, import it back. Only the families import it (their model classes derive from PreTrainedModel2x,
    BertTokenizer from TokenizerCompat2x), and it imports no family."""
    graph = import_graph(REPO_ROOT / "transformers")
    source = (REPO_ROOT / "transformers" / "compat_2x.py").read_text(encoding="utf-8")
    at_top = {node.module for node in ast.parse(source).body if isinstance(node, ast.ImportFrom) and node.level == 1}
    assert {"modeling_utils", "tokenization_utils"} <= at_top
    assert set(graph["compat_2x"]) == at_top  # no import of ours inside a function

    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for imported in graph[todo.pop()]:
                if imported not in seen:
                    seen.add(imported)
                    todo.append(imported)
        return seen

    for adapted in ("modeling_utils", "tokenization_utils"):
        assert "compat_2x" not in reachable(adapted), f"{adapted}.py reaches compat_2x.py"
    users = {name for name, imported in graph.items() if "compat_2x" in imported}
    assert {"modeling_bert", "tokenization_bert"} <= users
    assert reachable("compat_2x") & users == set(), "compat_2x.py imports a module that imports it"


def test_the_cycle_check_sees_a_circle_through_a_function_level_import(tmp_path):
    """The two tests above would pass on an empty graph: show that a circle closed inside a function is found."""
    package = tmp_path / "transformers"
    package.mkdir()
    (package / "low.py").write_text("import os\n\ndef f():\n    from .high import g\n")
    (package / "high.py").write_text("from transformers.low import f\nfrom . import other\n")
    (package / "other.py").write_text("")
    graph = import_graph(package)
    assert graph == {"high": {"low": 1, "other": 2}, "low": {"high": 4}, "other": {}}
    assert find_cycle(graph) == ["high", "low", "high"]
    assert find_cycle({"high": {"low": 1}, "low": {}}) is None


def test_starting_run_classifier_imports_no_metric_or_s3_library():
    """scipy, scikit-learn and boto3 are imported where they are used (a correlation or F1 metric, an s3://
    URL), not when run_classifier starts: together they added a second and a half to every run's start,
    twenty times over in a re-init sweep."""
    probe = "import sys, run_classifier; print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', " \
            "'sklearn', 'boto3', 'botocore'}))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_file_holds_a_merge_conflict_left_unresolved():
    """A merge once left `<<<<<<< HEAD ... >>>>>>>` in README.md, and every other test passed."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    marked = []
    for name in tracked.stdout.splitlines():
        path = REPO_ROOT / name
        if path.suffix not in (".py", ".md", ".txt", ".cfg", ".toml", ".json") and name != ".ci/run":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======" and path.suffix == ".py":
                marked.append(f"{name}:{number}")
    assert marked == []


# The seed's run_classifier.py (the article's) is 522 lines: train, evaluate, load_and_cache_examples, main.
# A reader holding it meets the same functions here, in the same order; the machinery of a run (lock,
# records, checkpoints, resume, DDP, precision) lives one floor down, in bert_read_step_to_step/.
SEED_SHAPE = ["train", "evaluate", "predict", "load_and_cache_examples", "main"]
MOST_LINES = 600


def top_level_functions(path):
    return [node.name for node in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(node, ast.FunctionDef)]


def test_run_classifier_has_the_seeds_shape_in_at_most_600_lines():
    path = REPO_ROOT / "run_classifier.py"
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MOST_LINES, f"run_classifier.py has {lines} lines: move run machinery into bert_read_step_to_step/"
    functions = top_level_functions(path)
    assert [name for name in functions if name in SEED_SHAPE] == SEED_SHAPE, functions


def test_the_shape_check_sees_functions_out_of_order(tmp_path):
    """The test above would pass on a file it cannot read: show it sees an order it forbids."""
    sample = tmp_path / "sample.py"
    sample.write_text("def main():\n    pass\n\n\nclass A:\n    def train(self):\n        pass\n\n\ndef train():\n"
                      "    pass\n")
    assert top_level_functions(sample) == ["main", "train"]


# ---- one rename ---------------------------------------------------------------------------------------------

RENAMES = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}


def rename_calls(path):
    """(line, function it sits in) for each call of os.replace, os.rename, os.renames or shutil.move,
    written as `os.replace(...)` or, after `from os import replace`, as `replace(...)`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil")
                for alias in node.names if (node.module, alias.name) in RENAMES}
    found = []

    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Call):
            called = node.func
            if (isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name)
                    and (called.value.id, called.attr) in RENAMES) or \
                    (isinstance(called, ast.Name) and called.id in imported):
                found.append((node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)
    visit(tree, None)
    return found


def test_every_rename_goes_through_replace_path():
    """Issue 23: a crash test stops between two renames by wrapping replace_path, so no other rename may
    exist: not in the library, the task side, the scripts, the benchmarks or the tests."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    calls = [(name, function) for name in tracked.stdout.splitlines()
             for line, function in rename_calls(REPO_ROOT / name)]
    assert calls == [("transformers/atomic_files.py", "replace_path")]


def test_the_rename_check_sees_each_spelling(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os, shutil\nfrom os import rename as mv\n\ndef save(a, b):\n    os.replace(a, b)\n"
                      "    shutil.move(a, b)\n    mv(a, b)\n\nkeep = os.replace  # a reference, not a call\n")
    assert rename_calls(sample) == [(5, "save"), (6, "save"), (7, "save")]
