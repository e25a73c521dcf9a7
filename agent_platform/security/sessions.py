"""Sign-in session limits by the token's `sid`: idle timeout, concurrent sessions, revocation.

A user's fourth concurrent session is refused (403 naming the limit) rather than evicting the
oldest: evicting would let whoever holds a stolen credential silently sign the real user out,
while a refusal is visible and an operator can revoke sessions (`agent-platform auth
revoke-session`). A session idle longer than the timeout is ended and refused; the provider's
refresh (1 h) is the provider's business. State is in SQLite locally and in Redis in production,
so every gateway worker sees the same sessions.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_platform.security.errors import SessionRefusedError

if TYPE_CHECKING:
    from agent_platform.settings import Settings


@dataclass(frozen=True, slots=True)
class SessionState:
    sid: str
    started: float
    last_seen: float
    revoked: bool = False


class SessionTracker(ABC):
    """Checks and records one request of a signed-in session."""

    touch_interval_s = 60.0

    def __init__(
        self, *, idle_timeout_s: float, max_sessions: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.idle_timeout_s, self.max_sessions, self.clock = idle_timeout_s, max_sessions, clock

    def touch(self, subject: str, sid: str) -> None:
        """Refuse a revoked, idle or over-the-limit session; otherwise record its use. The
        check and the write are one transaction per user, so racing sign-ins cannot both take
        the last free session."""
        with self._exclusive(subject):
            self._touch(subject, sid)

    @contextlib.contextmanager
    def _exclusive(self, subject: str) -> Iterator[None]:
        yield

    def _touch(self, subject: str, sid: str) -> None:
        now = self.clock()
        sessions = self._load(subject)
        current = sessions.get(sid)
        if current is not None:
            if current.revoked:
                raise SessionRefusedError(
                    "session: this sign-in session was revoked; sign in again"
                )
            if now - current.last_seen > self.idle_timeout_s:
                self._save(subject, SessionState(sid, current.started, current.last_seen, True))
                hours = self.idle_timeout_s / 3600
                raise SessionRefusedError(
                    f"session: idle for more than {hours:g} h (the session timeout); sign in again"
                )
        else:
            active = [
                s
                for s in sessions.values()
                if not s.revoked and now - s.last_seen <= self.idle_timeout_s
            ]
            if len(active) >= self.max_sessions:
                raise SessionRefusedError(
                    f"session: limit of {self.max_sessions} concurrent sessions per user reached; "
                    "sign out of another session or ask an operator to revoke one"
                )
        if current is not None and now - current.last_seen < self.touch_interval_s:
            return  # recently seen: idle tracking to the minute needs no write per request
        started = current.started if current else now
        self._save(subject, SessionState(sid, started, now, False))

    def sessions(self, subject: str) -> list[SessionState]:
        return sorted(self._load(subject).values(), key=lambda s: s.started)

    def revoke(self, subject: str, sid: str | None = None) -> int:
        """Revoke one session of `subject` (or all of them); returns how many."""
        count = 0
        for state in self._load(subject).values():
            if (sid is None or state.sid == sid) and not state.revoked:
                self._save(subject, SessionState(state.sid, state.started, state.last_seen, True))
                count += 1
        return count

    @abstractmethod
    def _load(self, subject: str) -> dict[str, SessionState]: ...

    @abstractmethod
    def _save(self, subject: str, state: SessionState) -> None: ...


class SQLiteSessionTracker(SessionTracker):
    """The local profile's sessions: `<home>/security/sessions.sqlite`."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local = threading.local()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS sessions (subject TEXT NOT NULL, sid TEXT NOT NULL,"
                " started REAL NOT NULL, last_seen REAL NOT NULL, revoked INTEGER NOT NULL,"
                " PRIMARY KEY (subject, sid))"
            )

    @contextlib.contextmanager
    def _exclusive(self, subject: str) -> Iterator[None]:
        connect = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        with contextlib.closing(connect) as conn:
            conn.execute("BEGIN IMMEDIATE")  # the database's write lock, across processes
            self._local.conn = conn
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                self._local.conn = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared
            return
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn, conn:
            yield conn

    def _load(self, subject: str) -> dict[str, SessionState]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT sid, started, last_seen, revoked FROM sessions WHERE subject = ?",
                (subject,),
            ).fetchall()
        return {r[0]: SessionState(r[0], r[1], r[2], bool(r[3])) for r in rows}

    def _save(self, subject: str, state: SessionState) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO sessions VALUES (?,?,?,?,?) ON CONFLICT(subject, sid) DO UPDATE SET"
                " last_seen = excluded.last_seen, revoked = excluded.revoked",
                (subject, state.sid, state.started, state.last_seen, int(state.revoked)),
            )


class RedisSessionTracker(SessionTracker):
    """Production sessions: one Redis hash per user, expiring after the idle timeout."""

    def __init__(
        self, url: str, *, prefix: str = "agent_platform:sessions:", **kwargs: Any
    ) -> None:
        import redis

        super().__init__(**kwargs)
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    @contextlib.contextmanager
    def _exclusive(self, subject: str) -> Iterator[None]:
        with self.client.lock(f"{self.prefix}{subject}:lock", timeout=5, blocking_timeout=5):
            yield

    def _load(self, subject: str) -> dict[str, SessionState]:
        raw = self.client.hgetall(self.prefix + subject)
        states = {}
        for sid, value in raw.items():
            data = json.loads(value)
            key = sid.decode() if isinstance(sid, bytes) else str(sid)
            states[key] = SessionState(key, data["started"], data["last_seen"], data["revoked"])
        return states

    def _save(self, subject: str, state: SessionState) -> None:
        value = json.dumps(
            {"started": state.started, "last_seen": state.last_seen, "revoked": state.revoked}
        )
        key = self.prefix + subject
        with self.client.pipeline() as pipe:
            pipe.hset(key, state.sid, value)
            pipe.expire(key, int(self.idle_timeout_s * 2) + 60)
            pipe.execute()


def open_session_tracker(settings: Settings) -> SessionTracker:
    """Redis in production (its URL is required there), SQLite locally."""
    limits: dict[str, Any] = {
        "idle_timeout_s": settings.auth.session_idle_timeout_s,
        "max_sessions": settings.auth.max_sessions,
    }
    if settings.profile == "production":
        if not settings.redis_url:
            raise ValueError(
                "sessions: the production profile keeps them in Redis; set AGENT_PLATFORM_REDIS_URL"
            )
        return RedisSessionTracker(settings.redis_url, **limits)
    return SQLiteSessionTracker(settings.home_dir / "security" / "sessions.sqlite", **limits)
