"""``@task`` and the registry of handlers, loaded from ``--app`` modules and from the
``taskstream.tasks`` entry-point group."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, get_type_hints

import msgspec

from ..core.breakers import Breaker, declared
from ..core.errors import HandlerError
from ..core.retry import RetryPolicy
from ..store.task_types import TaskTypeRow

if TYPE_CHECKING:  # the client (and httpx) is never imported by a worker
    from ..client import AsyncClient, Client, Task

P = TypeVar("P", contravariant=True)
R = TypeVar("R", covariant=True)
P_ = TypeVar("P_")
R_ = TypeVar("R_")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$")
QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
ANY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class TaskDefinition:
    """A registered handler and its defaults."""

    name: str
    fn: Callable[..., Any]
    queue: str
    timeout_s: float | None
    visibility_timeout_s: float | None
    retry: RetryPolicy | None  # None: the deployment's backoff
    max_attempts: int | None
    payload_type: type | None  # a msgspec.Struct, or None for "any JSON object"
    is_async: bool
    decoder: msgspec.json.Decoder[Any] = field(repr=False, compare=False)
    # The dependencies it uses: while one's breaker is open its tasks wait, no attempt spent.
    # Empty (most types): no breaker is asked, no Redis round trip.
    breakers: tuple[Breaker, ...] = ()

    def payload_schema(self) -> dict[str, Any]:
        if self.payload_type is None:
            return ANY_OBJECT_SCHEMA
        return msgspec.json.schema(self.payload_type)


def _payload_type(fn: Callable[..., Any]) -> type | None:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 2:
        raise HandlerError(f"{fn.__qualname__} must take (ctx, payload)")
    hint = get_type_hints(fn).get(params[1].name)
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return hint
    if hint is None or hint is dict or getattr(hint, "__origin__", None) is dict:
        return None
    raise HandlerError(f"{fn.__qualname__}: payload must be a msgspec.Struct or dict, not {hint}")


class Handler(Protocol[P, R]):
    """What ``@task`` returns: the function itself, which clients can also submit, typed by
    its payload: ``send_email.submit(client, SendEmail(...))`` (``asubmit`` with an
    AsyncClient); ``options`` are ``Client.submit``'s (queue, priority, delay_s...)."""

    def __call__(self, ctx: Any, payload: P, /) -> R: ...

    def submit(self, client: Client, payload: P, /, **options: Any) -> Task: ...

    async def asubmit(self, client: AsyncClient, payload: P, /, **options: Any) -> Task: ...


def _submittable(fn: Callable[[Any, P_], R_], name: str) -> Handler[P_, R_]:
    def submit(client: Client, payload: Any, /, **options: Any) -> Task:
        return client.submit(name, payload, **options)

    async def asubmit(client: AsyncClient, payload: Any, /, **options: Any) -> Task:
        return await client.submit(name, payload, **options)

    with contextlib.suppress(AttributeError):  # a bound method takes no attributes
        fn.submit = submit  # type: ignore[attr-defined]
        fn.asubmit = asubmit  # type: ignore[attr-defined]
    return cast("Handler[P_, R_]", fn)


class Registry:
    def __init__(self) -> None:
        self._defs: dict[str, TaskDefinition] = {}

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter(self._defs.values())

    def __len__(self) -> int:
        return len(self._defs)

    def get(self, name: str) -> TaskDefinition | None:
        return self._defs.get(name)

    def rows(self, default_timeout_s: float, default_max_attempts: int) -> list[TaskTypeRow]:
        """The catalog rows of these types (what the API validates submissions against)."""
        return [
            TaskTypeRow(
                name=d.name, queue=d.queue, timeout_s=d.timeout_s or default_timeout_s,
                visibility_timeout_s=d.visibility_timeout_s,
                max_attempts=d.max_attempts or default_max_attempts,
                payload_schema=msgspec.json.encode(d.payload_schema()).decode(),
            )
            for d in self
        ]  # fmt: skip

    def task(
        self,
        name: str,
        *,
        queue: str = "default",
        timeout_s: float | None = None,
        visibility_timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        max_attempts: int | None = None,
        breakers: Sequence[str | Breaker] = (),
    ) -> Callable[[Callable[[Any, P_], R_]], Handler[P_, R_]]:
        """Register ``fn(ctx, payload)`` as the handler of task type ``name``. ``breakers``:
        the dependencies it uses (names, or :class:`Breaker` with its own numbers); a failed
        attempt counts against each, and while one is open (for the task's tenant) its tasks
        are postponed without spending an attempt."""
        if not NAME.fullmatch(name):
            raise HandlerError(f"invalid task type name {name!r}")
        if not QUEUE.fullmatch(queue):
            raise HandlerError(f"invalid queue name {queue!r}")
        if isinstance(breakers, str):
            breakers = [breakers]  # one name, not its letters
        try:
            needs = declared(breakers)
        except (ValueError, TypeError) as exc:
            raise HandlerError(f"task type {name!r}: {exc}") from exc

        def register(fn: Callable[[Any, P_], R_]) -> Handler[P_, R_]:
            payload_type = _payload_type(fn)
            existing = self._defs.get(name)
            if existing is not None and existing.fn is not fn:
                raise HandlerError(f"task type {name!r} registered twice")
            self._defs[name] = TaskDefinition(
                name=name,
                fn=fn,
                queue=queue,
                timeout_s=timeout_s,
                visibility_timeout_s=visibility_timeout_s,
                retry=retry,
                max_attempts=max_attempts,
                payload_type=payload_type,
                is_async=inspect.iscoroutinefunction(fn),
                decoder=msgspec.json.Decoder(payload_type or dict[str, Any]),
                breakers=needs,
            )
            return _submittable(fn, name)

        return register


REGISTRY = Registry()
task = REGISTRY.task


def load_apps(modules: list[str], *, with_entry_points: bool = True) -> Registry:
    """Import ``--app`` modules and entry points; their ``@task`` calls fill :data:`REGISTRY`.
    Modules are found from the working folder too, as with ``python -m`` (the ``taskstream``
    script alone would look only where it is installed)."""
    here = os.getcwd()
    if modules and here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise HandlerError(f"cannot import --app {module!r}: {exc}") from exc
    if with_entry_points:
        for ep in entry_points(group="taskstream.tasks"):
            ep.load()
    return REGISTRY
