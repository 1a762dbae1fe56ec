"""The folders are the architecture: who may import what, checked from the source with `ast`
(nothing is executed, so a lazy import inside a function counts as much as a top-level one)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import taskstream

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "taskstream"
MAX_LINES = 450
CORE_THIRD_PARTY = {"msgspec", "croniter", "cryptography"}  # pure computation, no I/O
NETWORK = {
    "asyncpg", "redis", "litestar", "uvicorn", "structlog", "socket", "ssl", "selectors",
    "asyncio", "http", "urllib", "httpx", "aiohttp", "uvloop", "anyio", "websockets",
}  # fmt: skip
# One importer per I/O library: (top-level module, the only room allowed to import it).
OWNERS = [("asyncpg", "store"), ("redis", "broker"), ("litestar", "api")]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of everything the module imports, anywhere in its body."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))
IMPORTS = {path: _imports(path) for path in MODULES}


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def _top(name: str) -> str:
    return name.partition(".")[0]


def test_the_parser_sees_relative_and_nested_imports() -> None:
    keys_module = PACKAGE / "broker" / "keys.py"
    assert "taskstream.core.models" in IMPORTS[keys_module]
    assert "hashlib" in IMPORTS[keys_module]
    cli = IMPORTS[PACKAGE / "cli.py"]
    assert "taskstream.supervisor" in cli  # imported inside a function
    assert len(MODULES) > 30


@pytest.mark.parametrize("path", [p for p in MODULES if _room(p) == "core"], ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    imported = IMPORTS[path]
    assert not {n for n in imported if _top(n) in NETWORK}
    other_rooms = {
        n for n in imported if _top(n) == "taskstream" and not n.startswith("taskstream.core")
    }
    assert not other_rooms
    third_party = {
        _top(n) for n in imported if _top(n) not in sys.stdlib_module_names | {"taskstream"}
    }
    assert third_party <= CORE_THIRD_PARTY


@pytest.mark.parametrize(("library", "owner"), OWNERS)
def test_each_io_library_has_one_importer(library: str, owner: str) -> None:
    importers = {p for p, names in IMPORTS.items() if any(_top(n) == library for n in names)}
    assert importers, f"nobody imports {library}: is the rule still needed?"
    assert {p.relative_to(ROOT).as_posix() for p in importers if _room(p) != owner} == set()


def test_public_surface_is_sorted_and_resolves() -> None:
    assert taskstream.__all__ == sorted(taskstream.__all__)
    assert len(set(taskstream.__all__)) == len(taskstream.__all__)
    for name in taskstream.__all__:
        assert getattr(taskstream, name) is not None, name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def _text_files() -> list[Path]:
    roots = [ROOT / "taskstream", ROOT / "tests", ROOT / "sql"]
    files = [p for r in roots for p in r.rglob("*") if p.is_file()]
    files.append(ROOT / "README.md")
    return [p for p in files if "__pycache__" not in p.parts and p.suffix not in {".pyc"}]


def test_no_machine_paths_in_the_repo() -> None:
    needles = ["/" + "work" + "/", "/" + "root" + "/"]  # split so this file does not match
    offenders = []
    for path in _text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        offenders += [f"{path.relative_to(ROOT)}: {n}" for n in needles if n in text]
    assert offenders == []
