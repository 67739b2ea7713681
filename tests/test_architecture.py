"""Arrows run one way: each room imports only the rooms below it (docs/architecture.md lists the same rules).

Read from the source (every import statement, also those inside functions), so a new
arrow fails here before anyone has to find it in a review.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# room -> (rooms of ours it may import, third-party packages it may import). The standard
# library is always allowed; a room may import itself.
RULES = {
    "sciml.core": (set(), {"numpy"}),
    "sciml.cli": (set(), set()),
    "sciml.physics": ({"sciml.core"}, {"numpy"}),
    "sciml.models": ({"sciml.core"}, {"torch"}),
    "sciml.data": ({"sciml.core"}, {"numpy", "pyarrow", "xxhash", "torch", "ray"}),
    "sciml.figures": ({"sciml.core"}, {"matplotlib", "pandas", "numpy"}),
    "sciml.tracking": ({"sciml.core"}, {"mlflow"}),
    "sciml.ray_env": ({"sciml.core"}, {"ray"}),
    "data_gen": ({"sciml.core", "sciml.cli", "sciml.physics", "sciml.data", "sciml.ray_env"},
                 {"numpy", "pyarrow", "xxhash", "h5py", "ray"}),
    "sciml.training": ({"sciml.core", "sciml.data", "sciml.models", "sciml.tracking", "sciml.ray_env"},
                       {"numpy", "torch", "ray", "tqdm"}),
    "sciml.train": ({"sciml.core", "sciml.cli", "sciml.data", "sciml.models", "sciml.training", "sciml.tracking",
                     "sciml.ray_env"}, {"numpy", "torch", "ray"}),
    "sciml.sweeps": ({"sciml.core", "sciml.cli", "sciml.physics", "sciml.data", "sciml.models", "sciml.figures",
                      "sciml.tracking", "sciml.ray_env", "sciml.training", "data_gen"},
                     {"numpy", "pandas", "torch", "ray", "optuna"}),
    "sweeps": ({"sciml.sweeps"}, set()),
}
# Narrower rules inside a room: (file, what it may import besides its room's own rules).
RAY_FILES = {"sciml/data/ray_datasets.py"}  # the only file of sciml.data that may import Ray
DATA_GEN_DOOR = ("sciml/sweeps/datasets.py", {"ensure_dataset"})  # the one file of sciml/ importing data_gen


def room_of(module: str) -> str | None:
    matches = [room for room in RULES if module == room or module.startswith(room + ".")]
    return max(matches, key=len) if matches else None


def _imports(path: Path):
    """(module imported, names taken from it) for every import statement of one file."""
    package = list(path.relative_to(ROOT).parts[:-1])  # a module's package, or an __init__'s own
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, set()
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module, {alias.name for alias in node.names}


def _sources():
    for folder in ("sciml", "data_gen", "sweeps"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def _violations(path: Path) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    module = relative[:-3].replace("/", ".").removesuffix(".__init__")
    if module == "sciml":  # the namespace: importing any room runs it, so it imports nothing
        return [f"{relative} imports {imported}" for imported, _ in _imports(path)]
    room = room_of(module)
    if room is None:
        return [f"{relative}: in no room of RULES (add it there and to docs/architecture.md)"]
    ours, third_party = RULES[room]
    found = []
    for imported, names in _imports(path):
        top = imported.split(".")[0]
        if top in sys.stdlib_module_names:
            continue
        if top in ("sciml", "data_gen"):
            target = room_of(imported)
            if target == room:
                continue
            if target not in ours:
                found.append(f"{relative} imports {imported} ({room} -> {target} is not allowed)")
            elif target == "data_gen" and room.startswith("sciml") and (
                    relative != DATA_GEN_DOOR[0] or imported != "data_gen" or not names <= DATA_GEN_DOOR[1]):
                found.append(f"{relative} imports {imported} {sorted(names)}: sciml/ reaches data_gen only "
                             f"through {DATA_GEN_DOOR[0]} and data_gen.ensure_dataset")
        elif top not in third_party:
            found.append(f"{relative} imports {top} (not allowed in {room})")
        elif top == "ray" and room == "sciml.data" and relative not in RAY_FILES:
            found.append(f"{relative} imports ray: in sciml.data only {sorted(RAY_FILES)} may")
    return found


def test_every_import_follows_the_rules():
    violations = [v for path in _sources() for v in _violations(path)]
    assert violations == []


def test_the_rules_catch_upward_and_sideways_arrows(tmp_path, monkeypatch):
    # The checker itself must see an arrow when there is one.
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    for relative, line in [("sciml/physics/bad.py", "from sciml.data.schema import COLUMNS"),
                           ("sciml/figures/bad.py", "from sciml.sweeps.trials import TrialSpec"),
                           ("sciml/models/bad.py", "import pyarrow"),
                           ("sciml/data/manifest.py", "def f():\n    import ray"),
                           ("sciml/sweeps/runner.py", "from data_gen import generate_dataset"),
                           ("sciml/physics/spectral.py", "from ..data import schema")]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")
        assert len(_violations(path)) == 1, relative
    ok = tmp_path / "sciml/sweeps/datasets.py"
    ok.write_text("from data_gen import ensure_dataset\nfrom . import questions\n")
    assert _violations(ok) == []


def test_the_architecture_doc_lists_the_same_rules():
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (set(re.findall(r"`([^`]+)`", cells[2])),
                                         set(re.findall(r"`([^`]+)`", cells[3])))
    assert rows == RULES


@pytest.mark.parametrize("package, banned", [
    ("sciml.core", ("pyarrow", "torch", "ray", "pandas", "mlflow")),
    ("sciml.physics", ("pyarrow", "torch", "ray", "pandas", "mlflow")),
    ("sciml.models", ("pyarrow", "ray", "pandas", "mlflow")),
])
def test_the_ground_floor_loads_no_heavy_dependency(package, banned):
    """Importing every module of the package, in a fresh interpreter, loads none of ``banned``."""
    code = (f"import importlib, pkgutil, sys\nimport {package} as p\n"
            "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n    importlib.import_module(m.name)\n"
            f"print(sorted(m for m in {banned!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=120)
    assert out.stdout.strip() == "[]"
