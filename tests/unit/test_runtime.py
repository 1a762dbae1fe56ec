"""serve(): the worker's collector settings are applied before its services run; other services
keep CPython's defaults."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from taskstream import runtime


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.parametrize("worker_gc", [True, False])
def test_serve_sets_the_collector_before_services_run(restore_gc: None, worker_gc: bool) -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    async def service(stop: asyncio.Event) -> None:
        seen.append(gc.get_threshold())

    runtime.serve([service], worker_gc=worker_gc)
    assert seen == [runtime.WORKER_GC_THRESHOLDS if worker_gc else before]
    assert (gc.get_freeze_count() > 0) == worker_gc
