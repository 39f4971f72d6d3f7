import sys
from pathlib import Path

# Tests import the repository's packages (transformers/, bert_read_step_to_step/) from the root,
# whatever folder pytest was started from.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    # Multi-process tests (a Dask cluster, submitit's local executor, killed workers): few, and marked, so
    # `pytest -m "not slow"` gives the quick loop. CI runs them all.
    config.addinivalue_line("markers", "slow: starts several processes (Dask cluster, submitit jobs); CI runs it")


def pytest_collection_modifyitems(config, items):
    # The fast tests first, the slow ones (processes) last: a failure in the quick loop shows within minutes.
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)
