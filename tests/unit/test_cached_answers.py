"""The read cache's bookkeeping (services/api/cached_answers.py): forgotten by tag, never
keeping an answer that may predate a change it heard of, bounded in bytes and in age."""
from __future__ import annotations

from services.api.cached_answers import ENTRY_OVERHEAD, CachedAnswers

HEADERS = ((b"content-type", b"application/json"),)


def put(cache: CachedAnswers, key, body: bytes = b"{}", tags=(("run", "r1"),), ticket=None) -> bool:
    return cache.put(key, cache.ticket() if ticket is None else ticket, 200, HEADERS, body, tags)


def test_an_answer_is_kept_until_one_of_its_tags_is_forgotten():
    cache = CachedAnswers(1 << 20, ttl=10)
    assert put(cache, "a", tags=[("run", "r1"), ("org", "o")]) and put(cache, "b", tags=[("run", "r2")])
    assert cache.get("a").body == b"{}" and cache.get("a").headers == HEADERS
    cache.forget([("org", "o")])
    assert cache.get("a") is None and cache.get("b") is not None
    cache.clear()
    assert cache.get("b") is None and cache.bytes == 0


def test_an_answer_read_before_a_change_it_depends_on_is_refused():
    cache = CachedAnswers(1 << 20, ttl=10)
    ticket = cache.ticket()  # the route starts reading the store
    cache.forget([("run", "r1")])  # a change of that run is announced meanwhile
    assert not put(cache, "a", ticket=ticket)  # the answer may be older than the change
    assert put(cache, "b", tags=[("run", "r2")], ticket=ticket)  # another run's answer is not
    assert put(cache, "a")  # read after the change: kept
    later = cache.ticket()
    cache.clear()
    assert not put(cache, "c", ticket=later)  # everything in flight is refused after a clear
    assert put(cache, "c")


def test_the_oldest_used_answers_go_first_beyond_the_byte_budget():
    size = 100 + len(b"content-type") + len(b"application/json") + ENTRY_OVERHEAD
    cache = CachedAnswers(8 * size, ttl=10)
    for key in "abcdefgh":
        assert put(cache, key, b"x" * 100)
    cache.get("a")  # used: now the newest
    assert put(cache, "i", b"x" * 100)
    assert [k for k in "abcdefghi" if cache.get(k) is None] == ["b"] and cache.bytes == 8 * size
    assert not put(cache, "big", b"x" * (size + 1))  # more than an eighth of the budget: not kept


def test_an_answer_older_than_the_ttl_is_not_served():
    now = [0.0]
    cache = CachedAnswers(1 << 20, ttl=2.0, clock=lambda: now[0])
    put(cache, "a")
    now[0] = 2.0
    assert cache.get("a") is not None
    now[0] = 2.001
    assert cache.get("a") is None and len(cache) == 0
