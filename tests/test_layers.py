"""The layout's rules, checked on the source (issue 10): layers point one way.

- ``supervisors`` is a general library: it never imports ``xorj_actors``.
- No module imports a private module (``_name``) of another package.
- Production code never imports the localnet: only the localnet itself, ``engine/`` (which starts
  it in-process for ``make run``), the CLI dispatch and the config assembly may.
- No module is over ~500 lines: one that needs more is doing several jobs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("supervisors", "xorj_actors")
MAX_LINES = 500
#: May import the localnet: the localnet, the process that starts it in-process, the commands that
#: run or inspect it, and the config assembly that reads its section.
LOCALNET_IMPORTERS = ("xorj_actors/localnet/", "xorj_actors/engine/", "xorj_actors/cli.py", "xorj_actors/config.py")


def _modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _package_of(path: Path) -> str:
    """The package a source file belongs to: its folder, dotted."""
    return ".".join(path.parent.relative_to(ROOT).parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with the line; ``from a import b`` gives
    ``a`` and ``a.b`` (b may be a submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _private_owner(module: str) -> str | None:
    """The package that owns the first private component of ``module``, if it has one:
    ``xorj_actors.chain._session.X`` -> ``xorj_actors.chain``; ``xorj_actors._settings`` ->
    ``xorj_actors``; ``xorj_actors.chain.settings`` -> None."""
    parts = module.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_supervisors_imports_nothing_from_xorj_actors() -> None:
    bad = [
        f"{_rel(p)}:{line} imports {name}"
        for p in (ROOT / "supervisors").rglob("*.py")
        for line, name in _imports(p)
        if name == "xorj_actors" or name.startswith("xorj_actors.")
    ]
    assert not bad, "supervisors must stay a general library:\n" + "\n".join(bad)


def test_no_module_imports_a_private_module_of_another_package() -> None:
    bad = []
    for path in _modules():
        importer = _package_of(path)
        for line, name in _imports(path):
            owner = _private_owner(name) if name.startswith(PACKAGES) else None
            # A package's private modules serve that package and the packages inside it.
            if owner is not None and importer != owner and not importer.startswith(owner + "."):
                bad.append(f"{_rel(path)}:{line} imports {name}")
    assert not bad, "import the package's public API instead:\n" + "\n".join(bad)


def test_production_code_never_imports_the_localnet() -> None:
    bad = [
        f"{_rel(p)}:{line} imports {name}"
        for p in (ROOT / "xorj_actors").rglob("*.py")
        if not _rel(p).startswith(LOCALNET_IMPORTERS)
        for line, name in _imports(p)
        if name == "xorj_actors.localnet" or name.startswith("xorj_actors.localnet.")
    ]
    assert not bad, "production code must not depend on the localnet:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", list(_modules()), ids=_rel)
def test_no_module_is_doing_several_jobs(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{_rel(path)} has {lines} lines (limit {MAX_LINES}): split it along a real seam"
