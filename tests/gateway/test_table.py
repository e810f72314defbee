"""Picking revisions by weight, sticky by user."""

from __future__ import annotations

from collections import Counter

from funade.deploy.policy import Policy
from funade.gateway.table import Route


def route(weights: tuple[tuple[int, int], ...]) -> Route:
    return Route(
        id=1,
        name="calc",
        project="default",
        policy=Policy(),
        networks=(),
        weights=weights,
        shadow=None,
        replicas={1: ("http://a",), 2: ("http://b",)},
        versions={1: "calc:1", 2: "calc:2"},
    )


def test_a_sticky_user_always_gets_the_same_revision_and_users_split_by_weight() -> None:
    split = route(((1, 90), (2, 10)))
    first = {f"user-{i}": split.pick(f"user-{i}")[0] for i in range(2000)}
    assert all(split.pick(user)[0] == revision for user, revision in first.items())
    share = Counter(first.values())[2] / len(first)
    assert 0.07 < share < 0.13, share


def test_the_other_revisions_follow_as_fallbacks() -> None:
    assert sorted(route(((1, 50), (2, 50))).pick(None)) == [1, 2]
    assert route(((2, 100),)).pick("anyone") == [2]
    assert route(()).pick(None) == []


def test_unsticky_requests_follow_the_weights() -> None:
    split = route(((1, 70), (2, 30)))
    share = Counter(split.pick(None)[0] for _ in range(5000))[2] / 5000
    assert 0.26 < share < 0.34, share


def test_the_sticky_user_comes_from_a_header_or_a_cookie() -> None:
    from funade.gateway.http import sticky_of

    assert sticky_of({b"x-funade-user": b"alice"}) == "alice"
    assert sticky_of({b"cookie": b"theme=dark; funade-user=bob"}) == "bob"
    assert sticky_of({b"cookie": b"theme=dark"}) is None
    assert sticky_of({}) is None
