"""Shared fixtures. Importing ``utils`` first sets the TensorFlow switches (oneDNN off, see utils)."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402,F401

SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_sample(name: str) -> Path:
    """A real dataset sample beside the repository, or skip with a message when absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real sample {path} is absent (only present on development machines)")
    return path


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """A data root with small synthetic datasets (120 faces each)."""
    from utils.synthetic_faces import write_toy

    root = tmp_path_factory.mktemp("toydata")
    write_toy(root, n_per_dataset=120, seed=3)
    return root
