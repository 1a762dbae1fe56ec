"""Which role may do what. Roles are ordered: each includes the ones below it."""

from __future__ import annotations

import enum


class Action(enum.StrEnum):
    READ = "read"  # tasks, queues, schedules
    SUBMIT = "submit"
    OPERATE = "operate"  # cancel, retry, schedules, dead letters
    ADMIN = "admin"  # tenants and keys


ALLOWED: dict[str, frozenset[Action]] = {
    "viewer": frozenset({Action.READ}),
    "submitter": frozenset({Action.READ, Action.SUBMIT}),
    "operator": frozenset({Action.READ, Action.SUBMIT, Action.OPERATE}),
    "admin": frozenset(Action),
}


def allows(role: str, action: Action) -> bool:
    return action in ALLOWED.get(role, frozenset())
