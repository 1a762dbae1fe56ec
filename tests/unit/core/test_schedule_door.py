"""validate() refuses what could never fire or name a zone file, quickly."""

from __future__ import annotations

import time

import pytest

from taskstream.core.schedule import InvalidSchedule, validate


@pytest.mark.parametrize(
    "cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 31 2 * 5", "1 " * 300]
)
def test_expressions_that_never_fire_are_invalid(cron: str) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidSchedule):
        validate(cron, "UTC")
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 30 2 1", "*/5 * * * *", "* * * * * */10"])
def test_rare_but_real_expressions_are_valid(cron: str) -> None:
    assert str(validate(cron, "Europe/Paris")) == "Europe/Paris"


@pytest.mark.parametrize(
    "zone",
    ["America", "Europe/", "Europe", "../etc/passwd", "Europe/../UTC", "UTC\x00", "x" * 1000,
     "", "/etc/localtime", "Europe//Paris", "right/../../../../etc/hosts"],
)  # fmt: skip
def test_zones_that_are_not_zones_are_invalid(zone: str) -> None:
    with pytest.raises(InvalidSchedule):
        validate("0 * * * *", zone)


@pytest.mark.parametrize("zone", ["UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_real_zones_pass(zone: str) -> None:
    assert str(validate("0 * * * *", zone)) == zone
