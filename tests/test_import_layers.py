"""The package's layers, read from its import statements (no module is run).

Every `import` counts: at the top of a file, inside a function, under
`if TYPE_CHECKING:`. A circle hidden in any of them is still a circle a
reader has to hold in their head, and the next top-level import turns it into
an ImportError.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import coolfusion_local

PACKAGE = Path(coolfusion_local.__file__).parent
ROOT = "coolfusion_local"
# The package root holds only front doors; everything else lives in a folder named for its layer.
FRONT_DOORS = {"__init__", "__main__", "cli", "errors", "files", "locations", "fusion_engine"}
# What engine/ may import besides itself: it knows nothing of models.toml, model sources or any UI.
ENGINE_MAY_IMPORT = (f"{ROOT}.engine", f"{ROOT}.errors", f"{ROOT}.runtime")


def _module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file."""
    return _imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known)


def _imports_in(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from PACKAGE import name` imports the submodule PACKAGE.name where there is one.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target.startswith(ROOT) and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it; None when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_reader_sees_every_kind_of_import():
    graph = _graph()
    assert f"{ROOT}.engine.fusion" in graph[f"{ROOT}.engine.modes"]  # top level, relative
    assert f"{ROOT}.models.local" in graph[f"{ROOT}.fusion_engine"]  # inside a function
    assert f"{ROOT}.engine.llama_log" in graph[f"{ROOT}.engine.source_model"]  # `from . import name`
    hidden = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..config import Config\n"
              "def f():\n    import coolfusion_local.models.hub\n")
    assert _imports_in(hidden, f"{ROOT}.engine.x", False, set(graph)) == {f"{ROOT}.config", f"{ROOT}.models.hub"}
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_imports_itself_back_around_a_circle():
    assert _cycle(_graph()) is None


def test_the_engine_imports_neither_config_nor_model_sources_nor_anything_above_it():
    wrong = {
        name: sorted(t for t in targets if not t.startswith(ENGINE_MAY_IMPORT))
        for name, targets in _graph().items()
        if name.startswith(f"{ROOT}.engine")
    }
    assert {name: targets for name, targets in wrong.items() if targets} == {}


def test_the_package_root_holds_only_front_doors():
    loose = {path.stem for path in PACKAGE.glob("*.py")} - FRONT_DOORS
    assert loose == set()


def test_reading_the_config_and_the_engine_package_loads_no_llama_cpp():
    # `coolfusion --help`, config checks and `import coolfusion_local.engine` stay cheap.
    code = ("import sys; import coolfusion_local.cli, coolfusion_local.engine, coolfusion_local.config, "
            "coolfusion_local.fusion_engine; coolfusion_local.cli.build_parser(); "
            "print('llama_cpp' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
