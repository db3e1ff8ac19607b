"""``supervisors`` knows nothing of trading: it imports only the standard library, pykka and loguru."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import supervisors

ALLOWED = {"pykka", "loguru", "supervisors"}


def test_supervisors_imports_nothing_of_xorj_actors() -> None:
    package = Path(supervisors.__file__).parent
    foreign = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names:
                    foreign.append(f"{path.name}: {name}")
    assert not foreign, f"supervisors must import only the stdlib, pykka and loguru: {foreign}"
