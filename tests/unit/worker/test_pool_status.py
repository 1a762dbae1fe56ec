"""A child's status file (pool/status.py) and the worker options that make a pool (cli.py):
what the supervisor reads is what the child wrote, and a child's command line carries none of
the pool's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskstream.cli import _child_argv, _pool_options, _pooled, build_parser
from taskstream.pool.policy import CHILD_TIMEOUT_S, Autoscale, Bounds, Limits
from taskstream.pool.status import (
    MAX_MEMORY_ENV,
    MAX_TASKS_ENV,
    ChildStatus,
    limits_env,
    limits_from_env,
    read,
    remove,
    rss_bytes,
    write,
)


def test_a_status_reads_back_as_written_and_is_forgotten(tmp_path: Path) -> None:
    status = ChildStatus(
        pid=4242, beat_s=12.5, slots=10, busy=3, done=99, rss_bytes=1 << 27, waiting=7,
        retiring="max_tasks",
    )  # fmt: skip
    assert read(tmp_path, 4242) is None  # before its first beat
    write(tmp_path, status)
    assert read(tmp_path, 4242) == status
    assert [p.name for p in tmp_path.iterdir()] == ["4242.json"]  # no part file left behind
    remove(tmp_path, 4242)
    assert read(tmp_path, 4242) is None


def test_a_torn_file_reads_as_no_status(tmp_path: Path) -> None:
    (tmp_path / "7.json").write_text('{"pid": 7, "beat_s"')
    assert read(tmp_path, 7) is None


@pytest.mark.parametrize(
    "limits", [Limits(), Limits(max_tasks=100), Limits(max_memory_mb=512), Limits(5, 64)]
)
def test_limits_reach_the_child_through_its_environment(
    limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MAX_TASKS_ENV, raising=False)
    monkeypatch.delenv(MAX_MEMORY_ENV, raising=False)
    for name, value in limits_env(limits).items():
        monkeypatch.setenv(name, value)
    assert limits_from_env() == limits


def test_rss_is_this_process_s() -> None:
    if not Path("/proc/self/statm").exists():
        pytest.skip("no /proc here")
    rss = rss_bytes()
    assert rss is not None and 1 << 20 < rss < 1 << 40


POOL_FLAGS = [
    "--autoscale", "2,6", "--max-tasks-per-child", "100", "--max-memory-mb", "512",
    "--child-timeout-s", "12", "--scale-up-after-s", "2", "--scale-down-after-s", "9",
    "--processes", "3", "--metrics-port", "9100",
]  # fmt: skip


def test_a_child_s_command_line_is_the_plain_worker_s() -> None:
    args = build_parser().parse_args(
        ["worker", "--app", "a.b", "--queues", "q1,q2", "--concurrency", "7", *POOL_FLAGS]
    )
    argv = _child_argv(args)
    assert argv[1:] == [
        "-m", "taskstream", "worker", "--concurrency", "7", "--app", "a.b", "--queues", "q1,q2",
    ]  # fmt: skip
    assert _pool_options(args).autoscale == Autoscale(
        bounds=Bounds(2, 6), up_after_s=2.0, down_after_s=9.0
    )
    assert _pool_options(args).limits == Limits(100, 512)
    assert _pool_options(args).child_timeout_s == 12.0
    assert _pool_options(args).slots_per_child == 7


@pytest.mark.parametrize(
    ("flags", "pooled"),
    [
        ([], False),
        (["--processes", "1"], False),
        (["--processes", "2"], True),
        (["--autoscale", "1,4"], True),  # one process at first, but supervised
        (["--max-tasks-per-child", "10"], True),  # someone must replace it
        (["--max-memory-mb", "300"], True),
        (["--child-timeout-s", "10"], True),
    ],
)
def test_which_options_make_a_pool(flags: list[str], pooled: bool) -> None:
    args = build_parser().parse_args(["worker", *flags])
    assert _pooled(args) is pooled
    if pooled:
        assert _pool_options(args).child_timeout_s == (
            10.0 if "--child-timeout-s" in flags else CHILD_TIMEOUT_S
        )


@pytest.mark.parametrize(
    "flags",
    [
        ["--autoscale", "4"],
        ["--autoscale", "0,3"],
        ["--autoscale", "5,2"],
        ["--autoscale", "a,b"],
        ["--max-tasks-per-child", "0"],
        ["--max-memory-mb", "-5"],
        ["--max-memory-mb", "2.5"],
        ["--child-timeout-s", "0"],
    ],
)
def test_bad_pool_options_are_refused(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", *flags])
    assert flags[0] in capsys.readouterr().err
