"""Imports run one way: scripts -> utils -> models (the bottom layer); data converters may use utils."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {p.stem for p in ROOT.glob("*.py")}


def imported_modules(path: Path) -> set:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_models_import_nothing_above_them():
    for path in (ROOT / "models").rglob("*.py"):
        assert not imported_modules(path) & {"utils", "data", "benchmarks", *SCRIPTS}, path


def test_utils_import_no_scripts_converters_or_benchmarks():
    for path in (ROOT / "utils").rglob("*.py"):
        assert not imported_modules(path) & {"data", "benchmarks", *SCRIPTS}, path


def test_numpy_modules_do_not_import_tensorflow():
    for name in ("pseudo_labels", "targets", "tasks", "kinds", "registries", "label_propagation", "mrf"):
        assert not imported_modules(ROOT / "utils" / f"{name}.py") & {"tensorflow", "keras"}, name
    for path in (ROOT / "utils" / "missing").glob("*.py"):
        assert not imported_modules(path) & {"tensorflow", "keras"}, path
