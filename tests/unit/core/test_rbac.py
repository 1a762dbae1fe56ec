"""Role / action matrix; roles are ordered and unknown roles may do nothing."""

from __future__ import annotations

import itertools

import pytest

from taskstream.core.rbac import ALLOWED, Action, allows, may_grant

A = Action
ROLES = ["viewer", "submitter", "operator", "admin"]
MATRIX = {
    "viewer": {A.READ},
    "submitter": {A.READ, A.SUBMIT},
    "operator": {A.READ, A.SUBMIT, A.OPERATE},
    "admin": {A.READ, A.SUBMIT, A.OPERATE, A.ADMIN, A.MANAGE_KEYS},
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(Action))
def test_matrix(role: str, action: Action) -> None:
    assert allows(role, action) is (action in MATRIX[role])


@pytest.mark.parametrize("role", ["", "root", "Admin", "ADMIN", " admin", "owner"])
@pytest.mark.parametrize("action", list(Action))
def test_unknown_roles_may_do_nothing(role: str, action: Action) -> None:
    assert not allows(role, action)


def test_each_role_includes_the_one_below() -> None:
    assert list(ALLOWED) == ROLES
    for lower, higher in itertools.pairwise(ROLES):
        assert ALLOWED[lower] < ALLOWED[higher]


@pytest.mark.parametrize("granter", ROLES)
@pytest.mark.parametrize("role", ROLES)
def test_a_key_mints_keys_of_its_own_role_or_below(granter: str, role: str) -> None:
    assert may_grant(granter, role) is (ROLES.index(role) <= ROLES.index(granter))


@pytest.mark.parametrize(("granter", "role"), [("root", "viewer"), ("admin", "root"), ("", "")])
def test_unknown_roles_grant_nothing(granter: str, role: str) -> None:
    assert not may_grant(granter, role)
