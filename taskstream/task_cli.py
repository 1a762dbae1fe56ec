"""The CLI's verbs over the REST API, through ``taskstream.client``: ``tasks
submit|get|list|cancel|retry|wait|attempts``, ``queues``, ``workers``, ``dlq list|replay``,
``schedules list|pause|resume``.

They talk to a running API like any application would: ``--url``/``--key`` or
``TASKSTREAM_URL``/``TASKSTREAM_API_KEY``. Exit codes: 0 done, 1 the API refused (its problem
code and detail on stderr) or could not be reached, 2 a usage error.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from .core.config import Settings
from .lifecycle import Verb, progress
from .tables import aligned, when

if TYPE_CHECKING:
    from .client import Client, Queue, Schedule, Task

ENVIRONMENT = (
    "environment: TASKSTREAM_URL (the API's base URL, e.g. http://127.0.0.1:8000) and "
    "TASKSTREAM_API_KEY (an API key) are read when --url / --key are not given."
)
Run = Callable[["Client", argparse.Namespace], int]


class _Usage(Exception):
    """A usage error found after parsing (exit 2)."""


def _connection(args: argparse.Namespace) -> tuple[str, str]:
    url = args.url or os.environ.get("TASKSTREAM_URL", "")
    key = args.key or os.environ.get("TASKSTREAM_API_KEY", "")
    if not url:
        raise _Usage("no API URL: give --url or set TASKSTREAM_URL")
    if not key:
        raise _Usage("no API key: give --key or set TASKSTREAM_API_KEY")
    return url, key


def over_api(run: Run) -> Callable[[Settings, argparse.Namespace], int]:
    """A verb of ``cli.py``'s kind (settings, args) -> exit code, around ``run(client, args)``:
    the client made from the options, and its errors turned into exit codes."""

    def verb(_: Settings, args: argparse.Namespace) -> int:
        from .client import APIError, Client, ClientError

        try:
            url, key = _connection(args)
            with Client(url, key, timeout_s=args.http_timeout_s) as client:
                return run(client, args)
        except _Usage as exc:
            progress(f"taskstream: {exc}")
            return 2
        except APIError as exc:
            progress(f"taskstream: {exc.code}: {exc.detail} (HTTP {exc.status})")
            for item in exc.errors:
                progress(f"  {msgspec.json.encode(item).decode()}")
            return 1
        except ClientError as exc:
            progress(f"taskstream: {exc}")
            return 1

    return verb


# -- output -----------------------------------------------------------------------------------


def _json(value: Any) -> None:
    print(msgspec.json.encode(value).decode())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, str | UUID):
        return str(value)
    return msgspec.json.encode(value).decode()


def task_detail(task: Task) -> str:
    """One task, a field a line."""
    rows = [(name.upper(), _cell(getattr(task, name))) for name in task.__struct_fields__]
    return aligned(rows)


def task_table(tasks: Iterable[Task]) -> str:
    head = ("ID", "TYPE", "QUEUE", "PRIORITY", "STATUS", "ATTEMPTS", "CREATED", "LAST ERROR")
    rows = [
        (str(t.id), t.type, t.queue, t.priority, t.status.value, f"{t.attempts}/{t.max_attempts}",
         when(t.created_at), (t.last_error or "-")[:60])
        for t in tasks
    ]  # fmt: skip
    return aligned([head, *rows])


def queue_table(queues: Sequence[Queue]) -> str:
    head = ("QUEUE", "CRITICAL", "HIGH", "NORMAL", "LOW", "SCHEDULED", "PROCESSING", "DEAD",
            "OLDEST PENDING")  # fmt: skip
    rows = [
        (q.queue, *(str(q.pending.get(p, 0)) for p in ("critical", "high", "normal", "low")),
         str(q.scheduled), str(q.processing), str(q.dead),
         "-" if q.oldest_pending_age_s is None else f"{q.oldest_pending_age_s:.1f} s")
        for q in queues
    ]  # fmt: skip
    return aligned([head, *rows])


def schedule_table(schedules: Sequence[Schedule]) -> str:
    head = ("ID", "NAME", "CRON", "TIMEZONE", "TASK", "PAUSED", "NEXT RUN", "LAST RUN")
    rows = [
        (str(s.id), s.name, s.cron, s.timezone, s.task.type, "yes" if s.paused else "no",
         when(s.next_run_at), when(s.last_run_at))
        for s in schedules
    ]  # fmt: skip
    return aligned([head, *rows])


def _show_task(task: Task, args: argparse.Namespace) -> None:
    if args.output == "json":
        _json(task)
    else:
        print(task_detail(task))


def _show_tasks(tasks: Iterable[Task], args: argparse.Namespace) -> None:
    found = list(itertools.islice(tasks, args.limit) if args.limit else tasks)
    if args.output == "json":
        _json(found)
    else:
        print(task_table(found))


# -- verbs ------------------------------------------------------------------------------------


def _payload(text: str) -> Any:
    raw = sys.stdin.read() if text == "-" else text
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise _Usage(f"--payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise _Usage("--payload must be a JSON object")
    return payload


def tasks_submit(client: Client, args: argparse.Namespace) -> int:
    task = client.submit(
        args.type, _payload(args.payload), queue=args.queue, priority=args.priority,
        delay_s=args.delay_s, run_at=args.run_at, idempotency_key=args.idempotency_key,
        timeout_s=args.timeout_s, max_attempts=args.max_attempts, region=args.region,
    )  # fmt: skip
    if args.wait is not None:
        return _finished(client.wait(task.id, args.wait), args)
    _show_task(task, args)
    return 0


def _finished(task: Task, args: argparse.Namespace) -> int:
    """A finished task: shown; exit 0 when it completed, else 1."""
    _show_task(task, args)
    if task.status != "completed":
        progress(f"taskstream: task {task.id} is {task.status}")
        return 1
    return 0


def tasks_get(client: Client, args: argparse.Namespace) -> int:
    _show_task(client.get(args.id), args)
    return 0


def tasks_wait(client: Client, args: argparse.Namespace) -> int:
    return _finished(client.wait(args.id, args.timeout), args)


def tasks_list(client: Client, args: argparse.Namespace) -> int:
    page_size = min(500, args.limit or 500)
    found = client.list(status=args.status, type=args.type, queue=args.queue, page_size=page_size)
    _show_tasks(found, args)
    return 0


def tasks_cancel(client: Client, args: argparse.Namespace) -> int:
    _show_task(client.cancel(args.id), args)
    return 0


def tasks_retry(client: Client, args: argparse.Namespace) -> int:
    _show_task(client.retry(args.id), args)
    return 0


def tasks_attempts(client: Client, args: argparse.Namespace) -> int:
    attempts = client.attempts(args.id)
    if args.output == "json":
        _json(attempts)
        return 0
    head = ("ATTEMPT", "OUTCOME", "WORKER", "DURATION", "FINISHED", "ERROR")
    rows = [
        (str(a.attempt), a.outcome, a.worker or "-",
         "-" if a.duration_s is None else f"{a.duration_s:.3f} s", when(a.finished_at),
         (a.error or "-")[:80])
        for a in attempts
    ]  # fmt: skip
    print(aligned([head, *rows]))
    return 0


def queues(client: Client, args: argparse.Namespace) -> int:
    found = client.queues()
    if args.output == "json":
        _json(found)
    else:
        print(queue_table(found))
    return 0


def workers(client: Client, args: argparse.Namespace) -> int:
    found = client.workers()
    if args.output == "json":
        _json(found)
        return 0
    head = ("NAME", "HOST", "PID", "QUEUES", "RUNNING", "DEGRADED", "LAST SEEN")
    rows = [
        (w.name, w.host, str(w.pid), ",".join(w.queues) if w.queues else "all",
         f"{w.running}/{w.concurrency}", "yes" if w.degraded else "no", when(w.last_seen))
        for w in found
    ]  # fmt: skip
    print(aligned([head, *rows]))
    return 0


def dlq_list(client: Client, args: argparse.Namespace) -> int:
    page_size = min(500, args.limit or 500)
    _show_tasks(client.dead_letters(type=args.type, queue=args.queue, page_size=page_size), args)
    return 0


def dlq_replay(client: Client, args: argparse.Namespace) -> int:
    if not (args.ids or args.type or args.queue or args.all):
        raise _Usage("name the tasks to replay: IDs, --type, --queue, or --all")
    done = client.replay(args.ids or None, type=args.type, queue=args.queue, limit=args.limit)
    if args.output == "json":
        _json(done)
    else:
        progress(f"replayed {done.replayed} task(s)")
        if done.items:
            print(task_table(done.items))
    return 0


def _schedule_id(client: Client, ref: str) -> str:
    """A schedule's id, from its id or its name."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        pass
    for schedule in client.schedules():
        if schedule.name == ref:
            return str(schedule.id)
    raise _NoSchedule(ref)


class _NoSchedule(Exception):
    pass


def schedules_list(client: Client, args: argparse.Namespace) -> int:
    found = client.schedules()
    if args.output == "json":
        _json(found)
    else:
        print(schedule_table(found))
    return 0


def _set_paused(paused: bool) -> Run:
    def run(client: Client, args: argparse.Namespace) -> int:
        try:
            schedule_id = _schedule_id(client, args.schedule)
        except _NoSchedule:
            progress(f"taskstream: schedule_not_found: no schedule named {args.schedule!r}")
            return 1
        changed = (
            client.pause_schedule(schedule_id) if paused else client.resume_schedule(schedule_id)
        )
        if args.output == "json":
            _json(changed)
        else:
            print(schedule_table([changed]))
        return 0

    return run


# -- parser -----------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, fn: Run) -> argparse.ArgumentParser:
    """The options every verb over the API takes, and the environment it reads (in its help)."""
    parser.epilog = ENVIRONMENT
    parser.add_argument("--url", help="the API's base URL (default: $TASKSTREAM_URL)")
    parser.add_argument("--key", help="an API key (default: $TASKSTREAM_API_KEY)")
    parser.add_argument("--output", choices=["table", "json"], default="table")
    parser.add_argument(
        "--http-timeout-s", type=float, default=30.0, metavar="S",
        help="seconds to wait for each answer (default 30)",
    )  # fmt: skip
    parser.set_defaults(fn=over_api(fn))
    return parser


def _leaf(verbs: Any, name: str, fn: Run, help_: str) -> argparse.ArgumentParser:
    return _common(verbs.add_parser(name, help=help_, description=help_), fn)


def _count(text: str) -> int:
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _filters(parser: argparse.ArgumentParser, limit_help: str) -> None:
    parser.add_argument("--type", help="only tasks of this type")
    parser.add_argument("--queue", help="only tasks of this queue")
    parser.add_argument("--limit", type=_count, default=50, metavar="N", help=limit_help)


def _add_tasks(verb: Verb) -> None:
    tasks = verb("tasks", lambda *_: 2, "submit, inspect, cancel and retry tasks (over the API)")
    tasks.epilog = ENVIRONMENT
    sub = tasks.add_subparsers(dest="tasks_verb", required=True, metavar="VERB")
    submit = _leaf(sub, "submit", tasks_submit, "submit a task; prints it (or waits for it)")
    submit.add_argument("type", help="the task type, e.g. examples.echo")
    submit.add_argument("--payload", default="{}", help="a JSON object, or - to read stdin")
    submit.add_argument("--queue")
    submit.add_argument("--priority", choices=["critical", "high", "normal", "low"])
    submit.add_argument("--delay-s", type=float, metavar="S", help="run no sooner than in S s")
    submit.add_argument(
        "--run-at", type=datetime.fromisoformat, metavar="TIME",
        help="run no sooner than TIME (RFC 3339 with a zone, e.g. 2030-01-01T09:00:00Z)",
    )  # fmt: skip
    submit.add_argument(
        "--idempotency-key", help="the same key and body again return the first task"
    )
    submit.add_argument("--timeout-s", type=float, metavar="S", help="each attempt's time limit")
    submit.add_argument("--max-attempts", type=int, metavar="N")
    submit.add_argument("--region", help="where it runs (one of TASKSTREAM_REGIONS)")
    submit.add_argument(
        "--wait", type=float, metavar="S",
        help="wait up to S s for it to finish: exit 0 if it completed, else 1",
    )  # fmt: skip
    _leaf(sub, "get", tasks_get, "a task: status, result, error").add_argument("id")
    ls = _leaf(sub, "list", tasks_list, "tasks, newest first (every page, up to --limit)")
    ls.add_argument(
        "--status",
        choices=["pending", "scheduled", "processing", "completed", "failed", "cancelled"],
    )
    _filters(ls, "at most N tasks (default 50; 0: all)")
    _leaf(sub, "cancel", tasks_cancel, "cancel a pending or scheduled task").add_argument("id")
    _leaf(sub, "retry", tasks_retry, "send a failed task back to its queue").add_argument("id")
    wait = _leaf(
        sub, "wait", tasks_wait, "wait for a task to finish: exit 0 if it completed, else 1"
    )
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, default=60.0, metavar="S", help="(default 60)")
    _leaf(sub, "attempts", tasks_attempts, "a task's attempts").add_argument("id")


def add_task_verbs(verb: Verb) -> None:
    """``tasks``, ``queues``, ``workers``, ``dlq`` and ``schedules``: registered by cli.py."""
    _add_tasks(verb)
    _common(verb("queues", lambda *_: 2, "depth of each queue: by priority, delayed, dead"), queues)
    _common(verb("workers", lambda *_: 2, "live workers that serve this tenant's queues"), workers)

    dlq = verb("dlq", lambda *_: 2, "the dead-letter queue: failed tasks")
    dlq.epilog = ENVIRONMENT
    dlq_verbs = dlq.add_subparsers(dest="dlq_verb", required=True, metavar="VERB")
    _filters(_leaf(dlq_verbs, "list", dlq_list, "failed tasks, newest first"),
             "at most N tasks (default 50; 0: all)")  # fmt: skip
    replay = _leaf(dlq_verbs, "replay", dlq_replay, "send failed tasks back to their queues")
    replay.add_argument("ids", nargs="*", metavar="ID", help="these tasks (else the filters)")
    replay.add_argument("--type", help="failed tasks of this type")
    replay.add_argument("--queue", help="failed tasks of this queue")
    replay.add_argument("--all", action="store_true", help="any failed task (up to --limit)")
    replay.add_argument(
        "--limit", type=int, default=100, metavar="N", help="at most N (1-1000, default 100)"
    )

    schedules = verb("schedules", lambda *_: 2, "cron schedules: list, pause, resume")
    schedules.epilog = ENVIRONMENT
    schedule_verbs = schedules.add_subparsers(dest="schedules_verb", required=True, metavar="VERB")
    _leaf(schedule_verbs, "list", schedules_list, "every schedule with its next run")
    for name, paused in (("pause", True), ("resume", False)):
        p = _leaf(schedule_verbs, name, _set_paused(paused), f"{name} a schedule")
        p.add_argument("schedule", metavar="ID_OR_NAME")
