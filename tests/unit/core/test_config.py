"""Settings.from_env: an explicit mapping in, a frozen, typed Settings out."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import msgspec
import pytest

from taskstream.core import config
from taskstream.core.config import Settings


def test_empty_mapping_gives_the_defaults() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.visibility_timeout_s, s.default_max_attempts, s.redis_prefix) == (30.0, 3, "ts")


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"TASKSTREAM_VISIBILITY_TIMEOUT_S": "5"}, "visibility_timeout_s", 5.0),
        ({"TASKSTREAM_VISIBILITY_TIMEOUT_S": "0.25"}, "visibility_timeout_s", 0.25),
        ({"TASKSTREAM_DEFAULT_MAX_ATTEMPTS": "7"}, "default_max_attempts", 7),
        ({"TASKSTREAM_REDIS_PREFIX": "blue"}, "redis_prefix", "blue"),
        ({"TASKSTREAM_DATABASE_URL": "postgresql://db/x"}, "database_url", "postgresql://db/x"),
        ({"TASKSTREAM_REDIS_PREFIX": ""}, "redis_prefix", "ts"),  # empty: unset
        ({"TASKSTREAM_VISIBILITY_TIMEOUT_S": ""}, "visibility_timeout_s", 30.0),
        ({"taskstream_redis_prefix": "x"}, "redis_prefix", "ts"),  # names are upper case
        ({"REDIS_PREFIX": "x"}, "redis_prefix", "ts"),
    ],
)
def test_values_are_read_and_converted(env: dict[str, str], field: str, expected: Any) -> None:
    value = getattr(Settings.from_env(env), field)
    assert value == expected
    assert type(value) is type(expected)


def test_unknown_variables_are_ignored() -> None:
    assert Settings.from_env({"TASKSTREAM_NO_SUCH_KNOB": "1", "PATH": "/bin"}) == Settings()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("VISIBILITY_TIMEOUT_S", "abc"),
        ("VISIBILITY_TIMEOUT_S", "5s"),
        ("DEFAULT_MAX_ATTEMPTS", "1.5"),
        ("DEFAULT_MAX_ATTEMPTS", "three"),
        ("MAX_PAYLOAD_BYTES", " 5"),
        ("VISIBILITY_TIMEOUT_S", "nan"),
        ("VISIBILITY_TIMEOUT_S", "-1"),
        ("VISIBILITY_TIMEOUT_S", "0"),
        ("DEFAULT_MAX_ATTEMPTS", "0"),
    ],
)
def test_invalid_values_raise(name: str, raw: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        Settings.from_env({f"TASKSTREAM_{name}": raw})


def test_os_environ_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSTREAM_SHUTDOWN_GRACE_S", "3")
    assert Settings.from_env().shutdown_grace_s == 3.0


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.redis_prefix = "other"  # type: ignore[misc]


def _undocumented_fields() -> list[str]:
    cls = next(
        node
        for node in ast.parse(inspect.getsource(config)).body
        if isinstance(node, ast.ClassDef) and node.name == "Settings"
    )
    missing = []
    for node, following in zip(cls.body, [*cls.body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            documented = (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            )
            if not documented:
                missing.append(node.target.id)
    return missing


def test_every_field_has_a_docstring() -> None:
    assert _undocumented_fields() == []
    assert len(Settings.__struct_fields__) > 10
