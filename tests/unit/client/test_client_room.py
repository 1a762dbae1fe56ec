"""The client is what applications install beside their code: it imports httpx and msgspec,
the pure core, and nothing of the server (no litestar, asyncpg or redis; no api, store, broker
or worker room). And httpx stays in two modules of it, the transport boundary and the
drivers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[3] / "taskstream" / "client"
SERVER_LIBRARIES = {"litestar", "asyncpg", "redis", "uvicorn", "structlog"}
SERVER_ROOMS = {"api", "store", "broker", "worker", "scheduler", "observability"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.add(base)
    return found


def test_the_client_imports_nothing_of_the_server() -> None:
    modules = sorted(CLIENT.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        names = _imports(path)
        assert not {n for n in names if n.split(".")[0] in SERVER_LIBRARIES}, path.name
        rooms = {n.lstrip(".").split(".")[0] for n in names if n.startswith("..")}
        assert rooms <= {"core"}, (path.name, rooms)


def test_httpx_is_imported_only_at_the_boundary() -> None:
    users = {p.name for p in CLIENT.glob("*.py") if "httpx" in _imports(p)}
    assert users == {"transport.py", "sync.py", "aio.py"}


def test_only_the_client_imports_httpx_in_the_package() -> None:
    package = CLIENT.parent
    users = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if "httpx" in _imports(p) and p.parent != CLIENT
    }
    assert users == set()


def test_importing_the_package_or_a_worker_loads_no_httpx() -> None:
    """``taskstream.Client`` is resolved on first use; a worker process never pays for httpx."""
    code = (
        "import sys, taskstream, taskstream.worker.runner, taskstream.cli; "
        "assert 'httpx' not in sys.modules, 'httpx loaded'; "
        "from taskstream import Client; from taskstream.client import Client as C; "
        "assert Client is C and 'httpx' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
