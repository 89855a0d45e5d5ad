# SPDX-License-Identifier: GPL-3.0-or-later
"""The layout rule, read from the imports: three floors, arrows pointing down only.

Floor 1 (pure rules) imports nothing but floor 1 and the standard library's pure parts; floor 2 (I/O) imports
floors 1 and 2; floor 3 (modules, action, filter and plugin_utils) sits on top and is never imported from below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
PACKAGE = "ansible_collections.kubeops.daemonset.plugins."
FLOOR_1 = {"_values", "_objects", "_placement", "_template", "_rollout", "_history", "_diagnose", "_remediate",
           "_owners", "_batch", "_canary", "_rbac", "_manifest", "_apply", "_unhealthy",
           "_preflight", "_inputs", "_fleet"}  # fmt: skip
FLOOR_2 = {"_transport", "_client", "_watch", "_runner", "_ops"}
# What a pure rule has no business importing.
IO_MODULES = {"os", "socket", "ssl", "subprocess", "http", "urllib", "time", "tempfile", "shutil", "threading"}


def floor(module: str) -> int:
    """1, 2 or 3 for a dotted name below plugins/ (module_utils._ops.wait -> 2)."""
    parts = module.split(".")
    if parts[0] != "module_utils":
        return 3
    return 1 if parts[1] in FLOOR_1 else 2 if parts[1] in FLOOR_2 else 0


def files() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PLUGINS.rglob("*.py")):
        module = ".".join(path.relative_to(PLUGINS).with_suffix("").parts)
        if not module.endswith("__init__"):
            found.append((module, path))
    return found


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(this collection's modules imported, other top-level modules imported)."""
    ours, others = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(PACKAGE):
                base = node.module[len(PACKAGE) :]
                package = (PLUGINS / base.replace(".", "/")).is_dir()  # from a package: the names are its modules
                ours |= {f"{base}.{alias.name}" for alias in node.names} if package else {base}
            else:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            others |= {alias.name.split(".")[0] for alias in node.names}
    return ours, others


@pytest.mark.parametrize(("module", "path"), files(), ids=[module for module, _path in files()])
def test_imports_point_down(module: str, path: Path) -> None:
    assert floor(module) in (1, 2, 3), f"{module} belongs to no floor: add it to FLOOR_1 or FLOOR_2"
    ours, others = imports(path)
    upward = sorted(name for name in ours if floor(name) > floor(module) or floor(name) == 0)
    assert not upward, f"{module} (floor {floor(module)}) imports from a floor above: {upward}"
    if floor(module) == 1:
        assert not others & IO_MODULES, f"{module} is pure but imports {sorted(others & IO_MODULES)}"


def test_modules_are_thin() -> None:
    """About 80 lines of code outside DOCUMENTATION, EXAMPLES and RETURN: the logic lives below."""
    for path in sorted((PLUGINS / "modules").glob("*.py")):
        tree = ast.parse(path.read_text())
        docs = sum(
            node.end_lineno - node.lineno + 1
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(target, "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")
                                                    for target in node.targets)
        )  # fmt: skip
        code = [line for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")]
        assert len(code) - docs <= 80, f"{path.name}: {len(code) - docs} lines of code"
