"""Memory contract tests: each layer's cases run against both of its backends."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.memory import (
    ConversationStore,
    MemoryScope,
    PostgresConversationStore,
    PostgresWorkingMemory,
    RedisShortTermMemory,
    ShortTermMemory,
    SQLiteConversationStore,
    SQLiteShortTermMemory,
    SQLiteWorkingMemory,
    Turn,
    VersionNotFoundError,
    WorkingMemory,
    build_conversation_store,
    build_short_term_memory,
    build_working_memory,
    write_together,
)

SCOPE = MemoryScope("acme", "alice", "s1")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# Short-term: real TTLs on both backends (Redis expires keys itself), so these sleep briefly.
@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def short_term_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ShortTermMemory]]:
    made: list[ShortTermMemory] = []

    def make(ttl_s: float = 3600.0, max_items: int = 50) -> ShortTermMemory:
        if request.param == "redis":
            url = request.getfixturevalue("redis_url")
            prefix = request.getfixturevalue("redis_prefix")
            memory: ShortTermMemory = RedisShortTermMemory(
                url, ttl_s=ttl_s, max_items=max_items, key_prefix=prefix
            )
        else:
            memory = SQLiteShortTermMemory(
                tmp_path / "stm.sqlite", ttl_s=ttl_s, max_items=max_items
            )
        made.append(memory)
        return memory

    yield make
    for memory in made:
        memory.close()  # type: ignore[attr-defined]


def test_short_term_keeps_order_and_caps_size(short_term_factory) -> None:
    memory = short_term_factory(max_items=3)
    assert isinstance(memory, ShortTermMemory)
    for i in range(5):
        memory.add(SCOPE, "user" if i % 2 == 0 else "assistant", f"m{i}", {"i": i})
    items = memory.recent(SCOPE)
    assert [i.content for i in items] == ["m2", "m3", "m4"]
    assert items[0].metadata == {"i": 2} and items[0].role == "user"
    assert [i.content for i in memory.recent(SCOPE, limit=2)] == ["m3", "m4"]
    assert memory.recent(MemoryScope("acme", "alice", "other")) == []
    assert memory.recent(MemoryScope("other-tenant", "alice", "s1")) == []
    memory.clear(SCOPE)
    assert memory.recent(SCOPE) == []


def test_short_term_expires_after_ttl_and_refreshes_on_write(short_term_factory) -> None:
    memory = short_term_factory(ttl_s=0.6)
    memory.add(SCOPE, "user", "hello")
    remaining = memory.ttl_remaining(SCOPE)
    assert remaining is not None and 0.3 < remaining <= 0.6
    time.sleep(0.35)
    memory.add(SCOPE, "assistant", "hi")  # refreshes the whole buffer's TTL
    time.sleep(0.35)
    assert [i.content for i in memory.recent(SCOPE)] == ["hello", "hi"]
    time.sleep(0.4)
    assert memory.recent(SCOPE) == []
    assert memory.ttl_remaining(SCOPE) is None


def test_short_term_rejects_bad_input(short_term_factory) -> None:
    memory = short_term_factory()
    with pytest.raises(ValueError, match="role: must be one of"):
        memory.add(SCOPE, "robot", "x")
    with pytest.raises(ValueError, match="session: must be a non-empty string"):
        MemoryScope("acme", "alice", "")
    with pytest.raises(ValueError, match="ttl_s: must be > 0"):
        short_term_factory(ttl_s=0)


# Working memory and conversation state: retention checked with an injected clock.
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def working_factory(request: pytest.FixtureRequest, tmp_path: Path):
    made: list = []

    def make(kind: str, clock: Clock, retention_s: float = 86_400.0, **options):
        if request.param == "postgres":
            url = request.getfixturevalue("postgres_url")
            schema = request.getfixturevalue("pg_schema")
            cls = PostgresWorkingMemory if kind == "working" else PostgresConversationStore
            store = cls(url, schema=schema, retention_s=retention_s, clock=clock, **options)
        else:
            cls = SQLiteWorkingMemory if kind == "working" else SQLiteConversationStore
            path = tmp_path / "working.sqlite"
            store = cls(path, retention_s=retention_s, clock=clock, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_working_memory_is_indexed_by_tenant_user_session(working_factory) -> None:
    memory: WorkingMemory = working_factory("working", Clock())
    assert isinstance(memory, WorkingMemory)
    memory.put(SCOPE, "plan", {"steps": ["a", "b"]})
    memory.put(MemoryScope("acme", "alice", "s2"), "plan", "other session")
    memory.put(MemoryScope("acme", "bob", "s1"), "name", "Bob")
    memory.put(MemoryScope("globex", "alice", "s1"), "plan", "other tenant")
    assert memory.get(SCOPE, "plan") == {"steps": ["a", "b"]}
    memory.put(SCOPE, "plan", [1, 2])  # replace
    assert memory.get(SCOPE, "plan") == [1, 2]
    assert len(memory.entries("acme")) == 3
    assert {e.scope.session for e in memory.entries("acme", user="alice")} == {"s1", "s2"}
    assert [e.value for e in memory.entries("acme", user="alice", session="s1")] == [[1, 2]]
    assert memory.delete(SCOPE, "plan") and not memory.delete(SCOPE, "plan")
    assert memory.get(SCOPE, "plan") is None
    with pytest.raises(ValueError, match="value: must be JSON-serialisable"):
        memory.put(SCOPE, "bad", object())
    with pytest.raises(ValueError, match="key: must be a non-empty string"):
        memory.put(SCOPE, "", 1)


def test_working_memory_retention(working_factory) -> None:
    clock = Clock()
    memory: WorkingMemory = working_factory("working", clock)
    assert memory.retention_s == 24 * 3600
    memory.put(SCOPE, "old", 1)
    clock.now += 12 * 3600
    memory.put(SCOPE, "new", 2)
    clock.now += 12 * 3600 + 1  # "old" is 24 h + 1 s old, "new" 12 h + 1 s
    assert memory.get(SCOPE, "old") is None
    assert memory.get(SCOPE, "new") == 2
    assert [e.key for e in memory.entries("acme")] == ["new"]
    assert memory.purge_expired() == 1
    assert memory.purge_expired() == 0


def test_conversation_versions_and_rollback(working_factory) -> None:
    store: ConversationStore = working_factory("conversation", Clock())
    assert isinstance(store, ConversationStore)
    assert store.current(SCOPE).version == 0
    v1 = store.append(SCOPE, [Turn("user", "Hi"), Turn("assistant", "Hello!")])
    v2 = store.append(SCOPE, [Turn("user", "Refunds?"), Turn("assistant", "30 days [1]")])
    v3 = store.append(SCOPE, [Turn("user", "Oops, wrong turn")])
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert [t.content for t in store.current(SCOPE).turns][-1] == "Oops, wrong turn"
    restored = store.rollback(SCOPE, 2)
    assert restored.version == 4 and restored.restored_from == 2
    assert restored.turns == v2.turns
    assert store.current(SCOPE).turns == v2.turns
    assert store.get_version(SCOPE, 3).turns == v3.turns  # history is kept
    info = store.versions(SCOPE)
    assert [(i.version, i.turn_count, i.restored_from) for i in info] == [
        (1, 2, None),
        (2, 4, None),
        (3, 5, None),
        (4, 4, 2),
    ]
    messages = store.current(SCOPE).messages()
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert store.current(MemoryScope("acme", "alice", "s2")).turns == ()
    with pytest.raises(VersionNotFoundError, match=r"version: session 's1' .* has no version 9"):
        store.rollback(SCOPE, 9)
    with pytest.raises(ValueError, match="version: must be an integer >= 1"):
        store.get_version(SCOPE, 0)
    with pytest.raises(ValueError, match="turns: at least one turn"):
        store.append(SCOPE, [])
    with pytest.raises(ValueError, match="role: must be one of"):
        Turn("narrator", "x")


def test_conversation_retention_purges_idle_sessions(working_factory) -> None:
    clock = Clock()
    store: ConversationStore = working_factory("conversation", clock, retention_s=3600)
    idle = MemoryScope("acme", "alice", "idle")
    store.append(idle, [Turn("user", "a")])
    store.append(idle, [Turn("user", "b")])
    clock.now += 1800
    store.append(SCOPE, [Turn("user", "c")])
    clock.now += 1801
    assert store.purge_expired() == 2
    assert store.current(idle).version == 0
    assert store.current(SCOPE).version == 1


def test_expired_conversations_are_not_read_and_restart_at_version_one(working_factory) -> None:
    clock = Clock()
    store: ConversationStore = working_factory("conversation", clock, retention_s=3600)
    store.append(SCOPE, [Turn("user", "old question"), Turn("assistant", "old answer")])
    store.append(SCOPE, [Turn("user", "second")])
    clock.now += 3599
    assert store.current(SCOPE).version == 2  # idle 59 min 59 s: still alive
    clock.now += 1
    assert store.current(SCOPE).turns == () and store.current(SCOPE).version == 0
    assert store.versions(SCOPE) == []
    with pytest.raises(VersionNotFoundError):
        store.get_version(SCOPE, 1)
    fresh = store.append(SCOPE, [Turn("user", "new question")])
    assert fresh.version == 1 and [t.content for t in fresh.turns] == ["new question"]
    assert [i.version for i in store.versions(SCOPE)] == [1]


def test_writes_purge_expired_rows_at_most_once_per_interval(working_factory) -> None:
    clock = Clock()
    memory: WorkingMemory = working_factory("working", clock, retention_s=100, purge_interval_s=600)
    memory.put(SCOPE, "a", 1)  # the first write sweeps (nothing yet)
    clock.now += 101
    memory.put(SCOPE, "b", 2)  # "a" has expired, but the next sweep is not due
    assert memory.get(SCOPE, "a") is None  # expired rows are hidden at once all the same
    assert memory.purge_expired() == 1
    memory.put(SCOPE, "c", 3)
    clock.now += 600
    memory.put(SCOPE, "d", 4)  # due again: "b" and "c" go with this write
    assert memory.purge_expired() == 0
    assert [e.key for e in memory.entries("acme")] == ["d"]

    conversations: ConversationStore = working_factory(
        "conversation", clock, retention_s=100, purge_interval_s=600
    )
    idle = MemoryScope("acme", "alice", "idle")
    conversations.append(idle, [Turn("user", "x")])
    clock.now += 601
    conversations.append(SCOPE, [Turn("user", "y")])  # sweeps the idle session
    assert conversations.purge_expired() == 0
    assert conversations.current(SCOPE).version == 1


def test_sqlite_short_term_sweeps_periodically_with_a_clock(tmp_path: Path) -> None:
    clock = Clock()
    memory = SQLiteShortTermMemory(
        tmp_path / "stm.sqlite", ttl_s=60, max_items=3, clock=clock, purge_interval_s=300
    )
    other = MemoryScope("acme", "bob", "s9")
    memory.add(other, "user", "stale")
    clock.now += 61
    assert memory.recent(other) == [] and memory.ttl_remaining(other) is None
    memory.add_many(SCOPE, [("user", "q", None), ("assistant", "a", None)])
    assert memory.purge_expired() == 1  # not swept yet: the interval had not passed
    memory.add(other, "user", "again")
    clock.now += 300  # both buffers have expired, and a sweep is due
    memory.add_many(SCOPE, [("user", "q2", None), ("assistant", "a2", {"n": 2})])
    assert memory.purge_expired() == 0  # "q", "a" and "again" went with that write
    assert [m.content for m in memory.recent(SCOPE)] == ["q2", "a2"]  # restarted empty
    memory.add(SCOPE, "user", "q3", {"n": 3})
    memory.add(SCOPE, "assistant", "a3")
    assert [m.content for m in memory.recent(SCOPE)] == ["a2", "q3", "a3"]  # capped at 3
    assert memory.recent(SCOPE)[1].metadata == {"n": 3}
    with pytest.raises(ValueError, match="role: must be one of"):
        memory.add_many(SCOPE, [("user", "fine", None), ("robot", "bad", None)])
    assert [m.content for m in memory.recent(SCOPE)] == ["a2", "q3", "a3"]  # nothing half-written
    with pytest.raises(ValueError, match=r"entries\[1\]: must be a \(role, content, metadata\)"):
        memory.add_many(SCOPE, [("user", "fine", None), ("user", "no metadata")])  # type: ignore[list-item]
    assert [m.content for m in memory.recent(SCOPE)] == ["a2", "q3", "a3"]
    assert memory.recent(SCOPE)[0].metadata == {"n": 2}
    memory.close()


def test_layers_sharing_a_file_write_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "working.sqlite"
    conversations = SQLiteConversationStore(path)
    short_term = SQLiteShortTermMemory(path)
    working = SQLiteWorkingMemory(path)
    assert conversations.db is short_term.db is working.db  # one connection for the file
    with (
        pytest.raises(RuntimeError, match="boom"),
        write_together(conversations, short_term, working),
    ):
        conversations.append(SCOPE, [Turn("user", "q")])
        short_term.add(SCOPE, "user", "q")
        working.put(SCOPE, "request:1", {"status": "answered"})
        raise RuntimeError("boom")
    assert conversations.current(SCOPE).version == 0  # all rolled back together
    assert short_term.recent(SCOPE) == [] and working.get(SCOPE, "request:1") is None
    with write_together(conversations, short_term, working):
        conversations.append(SCOPE, [Turn("user", "q")])
        short_term.add(SCOPE, "user", "q")
        working.put(SCOPE, "request:1", {"status": "answered"})
    reopened = SQLiteConversationStore(path)
    assert reopened.current(SCOPE).version == 1
    for store in (conversations, short_term, working):
        store.close()
    assert reopened.current(SCOPE).turns == (Turn("user", "q"),)  # still open for its user
    reopened.close()


def test_reads_do_not_wait_for_another_threads_transaction(tmp_path: Path) -> None:
    path = tmp_path / "working.sqlite"
    conversations, short_term = SQLiteConversationStore(path), SQLiteShortTermMemory(path)
    conversations.append(SCOPE, [Turn("user", "committed")])
    inside, finish = threading.Event(), threading.Event()

    def writer() -> None:
        with write_together(conversations, short_term):
            conversations.append(SCOPE, [Turn("user", "pending")])
            short_term.add(SCOPE, "user", "pending")
            assert conversations.current(SCOPE).version == 2  # its own writes, uncommitted
            inside.set()
            finish.wait(timeout=10)

    seen: list[object] = []

    def reader() -> None:
        seen.extend([conversations.current(SCOPE).version, short_term.recent(SCOPE)])

    writing = threading.Thread(target=writer)
    writing.start()
    try:
        assert inside.wait(timeout=5)
        reading = threading.Thread(target=reader)
        reading.start()
        reading.join(timeout=2)
        assert not reading.is_alive(), "a read waited for another thread's transaction"
        assert seen == [1, []]  # the last committed state
    finally:
        finish.set()
        writing.join(timeout=10)
    assert conversations.current(SCOPE).version == 2
    assert [m.content for m in short_term.recent(SCOPE)] == ["pending"]
    conversations.close()
    short_term.close()


def test_periodic_purges_run_after_the_request_transaction_commits(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "working.sqlite"
    working = SQLiteWorkingMemory(path, retention_s=100, clock=clock, purge_interval_s=600)
    conversations = SQLiteConversationStore(path, clock=clock)
    working.put(MemoryScope("acme", "bob", "old"), "k", 1)  # the first write's sweep: nothing
    clock.now += 601  # "k" has expired and a sweep is due
    with write_together(conversations, working):
        working.put(SCOPE, "request:1", {"status": "answered"})
        conversations.append(SCOPE, [Turn("user", "q")])
        assert working.purge_expired() == 1  # the put's sweep has not run inside the block
        working.put(MemoryScope("acme", "bob", "old"), "k", 2)
        clock.now += 101  # expired again before the commit: the deferred sweep removes it
    assert working.purge_expired() == 0  # both expired rows went with the commit
    assert conversations.current(SCOPE).version == 1
    working.close()
    conversations.close()


def test_write_together_needs_one_file_and_unclosed_stores_free_their_connection(
    tmp_path: Path,
) -> None:
    one, other = (
        SQLiteWorkingMemory(tmp_path / "a.sqlite"),
        SQLiteWorkingMemory(tmp_path / "b.sqlite"),
    )
    with (
        pytest.raises(ValueError, match=r"stores: write_together needs one SQLite file"),
        write_together(one, other),
    ):
        pass
    one.close()
    other.close()
    store = SQLiteShortTermMemory(tmp_path / "leaked.sqlite")
    store.add(SCOPE, "user", "kept")
    database = weakref.ref(store.db)
    del store  # never closed
    gc.collect()
    assert database() is None, "a store nobody holds kept its SQLite connection"
    reopened = SQLiteShortTermMemory(tmp_path / "leaked.sqlite")
    assert [m.content for m in reopened.recent(SCOPE)] == ["kept"]
    reopened.close()


def test_backends_follow_the_settings(settings) -> None:
    runtime = RuntimeSettings()
    stm = build_short_term_memory(settings, runtime)
    working = build_working_memory(settings, runtime)
    conversations = build_conversation_store(settings, runtime)
    assert isinstance(stm, SQLiteShortTermMemory)
    assert isinstance(working, SQLiteWorkingMemory)
    assert isinstance(conversations, SQLiteConversationStore)
    assert working.db.path == conversations.db.path == stm.db.path  # one file, one transaction
    assert stm.ttl_s == 3600 and working.retention_s == 86_400
    for store in (stm, working, conversations):
        store.close()
    with pytest.raises(ValueError, match="AGENT_PLATFORM_POSTGRES_URL"):
        build_working_memory(settings, RuntimeSettings(memory={"working_backend": "postgres"}))


@pytest.mark.postgres
@pytest.mark.redis
def test_production_backends_from_settings(
    settings, postgres_url, redis_url, pg_schema, redis_prefix
):
    prod = settings.model_copy(update={"postgres_url": postgres_url, "redis_url": redis_url})
    runtime = RuntimeSettings(
        memory={"postgres_schema": pg_schema, "redis_key_prefix": redis_prefix}
    )
    stm = build_short_term_memory(prod, runtime)
    working = build_working_memory(prod, runtime)
    conversations = build_conversation_store(prod, runtime)
    assert isinstance(stm, RedisShortTermMemory)
    assert isinstance(working, PostgresWorkingMemory)
    assert isinstance(conversations, PostgresConversationStore)
    conversations.append(SCOPE, [Turn("user", "hi")])
    assert conversations.current(SCOPE).version == 1
    for store in (stm, working, conversations):
        store.close()


def test_replicas_starting_at_once_create_the_schema_once(
    postgres_url: str, pg_schema: str
) -> None:
    """Gateway replicas start together on a new database: every store they open creates its
    tables without tripping over the others' `CREATE ... IF NOT EXISTS`."""
    start, errors = threading.Barrier(6), []

    def open_stores() -> None:
        start.wait()
        try:
            PostgresConversationStore(postgres_url, schema=pg_schema).close()
            PostgresWorkingMemory(postgres_url, schema=pg_schema).close()
        except Exception as exc:  # the race surfaced as psycopg's UniqueViolation
            errors.append(repr(exc))

    threads = [threading.Thread(target=open_stores) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
