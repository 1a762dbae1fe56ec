"""Which role may do what. Roles are ordered: each includes the ones below it."""

from __future__ import annotations

import enum


class Action(enum.StrEnum):
    READ = "read"  # tasks, queues, schedules
    SUBMIT = "submit"
    OPERATE = "operate"  # cancel, retry, schedules, dead letters
    ADMIN = "admin"  # tenants
    MANAGE_KEYS = "manage keys"  # list, create and revoke the tenant's API keys


ALLOWED: dict[str, frozenset[Action]] = {
    "viewer": frozenset({Action.READ}),
    "submitter": frozenset({Action.READ, Action.SUBMIT}),
    "operator": frozenset({Action.READ, Action.SUBMIT, Action.OPERATE}),
    "admin": frozenset(Action),
}
RANK = {role: rank for rank, role in enumerate(ALLOWED)}  # viewer 0 ... admin 3


def allows(role: str, action: Action) -> bool:
    return action in ALLOWED.get(role, frozenset())


def may_grant(granter: str, role: str) -> bool:
    """Whether a key of role ``granter`` may mint a key of ``role``: never above its own."""
    return granter in RANK and role in RANK and RANK[role] <= RANK[granter]
