"""Dependencies point one way: training depends on the library, never the reverse, and no module of
the package imports one that imports it back (timm keeps its layers apart from its training the
same way). The import graph is read from the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bottlecheck"
TRAINING = "bottlecheck.training"
# The `train` command is training's front door: it calls into training when it runs (inside the
# command's function, never when the CLI is imported). No other module outside training may.
FRONT_DOOR = {
    ("bottlecheck.cli.train", "bottlecheck.training.adapt_judge"),
    ("bottlecheck.cli.train", "bottlecheck.training.train"),
}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(bottlecheck module imported, whether at import time) for each import in the module's source;
    imports under `if TYPE_CHECKING:` never run and are left out."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, at_import_time: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            now = at_import_time and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, now) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from the module's own package up
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    package = package[: len(package) - (child.level - 1)]
                    base = ".".join([*package, base] if base else package)
                for alias in child.names:  # `from bottlecheck.training import judge` imports a module
                    target = f"{base}.{alias.name}"
                    found.append((target if target in MODULES else base, now))
            visit(child, now)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return [(target, now) for target, now in found if target == "bottlecheck" or target.startswith("bottlecheck.")]


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _in_training(module: str) -> bool:
    return module == TRAINING or module.startswith(TRAINING + ".")


def test_the_graph_is_read():
    assert len(MODULES) > 30 and "bottlecheck.engines" in MODULES and "bottlecheck.training.train" in MODULES
    assert ("bottlecheck.artifact", True) in GRAPH["bottlecheck.engines"]
    assert ("bottlecheck.layers", False) in GRAPH["bottlecheck.engines"]  # inside TensorFlowEngine.__init__


def test_nothing_outside_training_imports_training():
    """Not the engines (the Keras model's custom layer is bottlecheck.layers), not the server, not the
    CLI when it is imported: only the `train` command, when it runs."""
    crossings = {
        (module, target)
        for module, imports in GRAPH.items()
        if not _in_training(module)
        for target, _ in imports
        if _in_training(target)
    }
    assert crossings <= FRONT_DOOR, crossings - FRONT_DOOR
    at_import_time = [
        (module, target)
        for module, imports in GRAPH.items()
        if not _in_training(module)
        for target, now in imports
        if now and _in_training(target)
    ]
    assert not at_import_time


def test_there_is_no_import_cycle():
    """Among the package's modules, counting imports inside functions too (a cycle hidden in a function
    is still two modules that cannot be understood, or moved, one without the other)."""
    edges = {name: {t for t, _ in imports if t in MODULES and t != name} for name, imports in GRAPH.items()}
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(edges[module]):
            walk(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        walk(module, [])


def test_training_and_its_one_stage_and_two_stage_paths_stand_apart():
    """train.py (a one-stage model) and adapt_judge.py (a two-stage base's judge) share the split
    helpers through training/split.py, and neither imports the other."""
    train = {t for t, _ in GRAPH["bottlecheck.training.train"]}
    adapt = {t for t, _ in GRAPH["bottlecheck.training.adapt_judge"]}
    assert "bottlecheck.training.adapt_judge" not in train and "bottlecheck.training.train" not in adapt
    assert "bottlecheck.training.split" in train & adapt


def test_classifying_imports_nothing_of_training():
    """What runs, not only what is written: the CLI classifying the examples and the server's app."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from bottlecheck.cli.main import main\n"
        "import bottlecheck.server.app\n"
        "result = CliRunner().invoke(main, ['classify', 'examples/', '-f', 'json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('bottlecheck.training')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_every_folder_of_the_package_ships():
    """The wheel (and so the Docker image) holds the packages pyproject.toml lists, not what is on disk:
    a folder left out of the list passes every test here, against the source tree, and fails installed."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    on_disk = {_name(path) for path in PACKAGE.rglob("__init__.py")}
    assert on_disk <= listed, on_disk - listed
