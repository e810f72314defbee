"""The gateway's key cache: one store lookup for many requests that need the same key at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from funade.auth.service import create_key, revoke_key
from funade.gateway.http import Refused
from funade.gateway.keys import KeyCache
from funade.store import Database


@pytest.fixture
def queries(database: Database) -> Iterator[list[str]]:
    """Every SQL statement the store runs meanwhile."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(database.engine, "before_cursor_execute", record)
    yield seen
    event.remove(database.engine, "before_cursor_execute", record)


def reader_key(database: Database, *, revoked: bool = False) -> str:
    with database.session() as session:
        text, row = create_key(
            session, name="prometheus", scopes=["read"], project=None, created_by=None
        )
        if revoked:
            revoke_key(session, row)
    return text


def test_requests_that_need_a_key_at_once_share_one_lookup(
    database: Database, queries: list[str]
) -> None:
    token = reader_key(database)
    cache = KeyCache(database)
    headers = {b"authorization": f"Bearer {token}".encode()}

    async def many() -> list[Any]:
        return await asyncio.gather(*(cache.reader(headers, "127.0.0.1") for _ in range(50)))

    queries.clear()
    principals = asyncio.run(many())
    assert {p.name for p in principals} == {"prometheus"}
    lookups = [q for q in queries if "api_keys" in q and q.lstrip().upper().startswith("SELECT")]
    assert 1 <= len(lookups) <= 2  # one lookup (a key row, and perhaps its project)
    assert len(queries) < 10


def test_a_shared_lookup_refuses_every_waiter_of_a_revoked_key(database: Database) -> None:
    token = reader_key(database, revoked=True)
    cache = KeyCache(database)
    headers = {b"authorization": f"Bearer {token}".encode()}

    async def many() -> list[Any]:
        calls = (cache.reader(headers, "127.0.0.1") for _ in range(5))
        return await asyncio.gather(*calls, return_exceptions=True)

    answers = asyncio.run(many())
    assert all(isinstance(a, Refused) and a.status == 401 for a in answers), answers
    assert {a.code for a in answers if isinstance(a, Refused)} == {"unauthenticated"}


def test_a_caller_that_goes_away_does_not_fail_the_others(database: Database) -> None:
    token = reader_key(database)
    cache = KeyCache(database)
    headers = {b"authorization": f"Bearer {token}".encode()}

    async def scenario() -> Any:
        first = asyncio.ensure_future(cache.reader(headers, "127.0.0.1"))
        second = asyncio.ensure_future(cache.reader(headers, "127.0.0.1"))
        await asyncio.sleep(0)  # both wait on the one lookup
        first.cancel()
        return await second

    assert asyncio.run(scenario()).name == "prometheus"
