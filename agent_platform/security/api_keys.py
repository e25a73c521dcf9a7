"""Service-account API keys: shown once at creation, stored only as SHA-256 hashes (SQLite under
the home locally, PostgreSQL in production).

A key is `ap_<id>_<secret>` with a 256-bit random secret, so a fast hash is enough (there is
nothing to brute-force) and lookups by id stay cheap. The store keeps the id, the hash, the
account name, its roles and tenants; revoking a key marks it, nothing is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_platform.security.errors import AuthenticationError
from agent_platform.security.identity import Identity

if TYPE_CHECKING:
    from agent_platform.settings import Settings

PREFIX = "ap_"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    name: str
    roles: tuple[str, ...]
    tenants: tuple[str, ...]
    created_at: str
    revoked: bool


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


_TABLE = (
    "CREATE TABLE IF NOT EXISTS {t} (key_id TEXT PRIMARY KEY, hash TEXT NOT NULL,"
    " name TEXT NOT NULL, roles TEXT NOT NULL, tenants TEXT NOT NULL,"
    " created_at TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)"
)


class ApiKeyStore:
    """API keys in a SQLite file (`<home>/security/api_keys.sqlite`, mode 0600)."""

    table = "api_keys"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._run(_TABLE.format(t=self.table))
        self.path.chmod(0o600)

    def _run(
        self, query: str, params: tuple[object, ...] = ()
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement (`?` placeholders, `{t}` the table): (rows, rowcount)."""
        with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
            cursor = conn.execute(query.format(t=self.table), params)
            return cursor.fetchall(), cursor.rowcount

    def create(
        self, name: str, *, roles: list[str], tenants: list[str]
    ) -> tuple[str, ApiKeyRecord]:
        """A new key for service account `name`: (the key, shown once; what is stored)."""
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = ApiKeyRecord(
            key_id,
            name,
            tuple(sorted(roles)),
            tuple(sorted(tenants)),
            datetime.now(UTC).isoformat(timespec="seconds"),
            False,
        )
        self._run(
            "INSERT INTO {t} VALUES (?,?,?,?,?,?,0)",
            (
                key_id,
                _digest(secret),
                name,
                json.dumps(record.roles),
                json.dumps(record.tenants),
                record.created_at,
            ),
        )
        return f"{PREFIX}{key_id}_{secret}", record

    def revoke(self, key_id: str) -> bool:
        _, count = self._run("UPDATE {t} SET revoked = 1 WHERE key_id = ?", (key_id,))
        return count > 0

    def list(self) -> list[ApiKeyRecord]:
        rows, _ = self._run(
            "SELECT key_id, name, roles, tenants, created_at, revoked FROM {t} ORDER BY created_at"
        )
        return [
            ApiKeyRecord(
                r[0], r[1], tuple(json.loads(r[2])), tuple(json.loads(r[3])), r[4], bool(r[5])
            )
            for r in rows
        ]

    def authenticate(self, key: str) -> Identity:
        """The service account a presented key belongs to, or AuthenticationError."""
        parts = key.removeprefix(PREFIX).split("_", 1)
        if not key.startswith(PREFIX) or len(parts) != 2 or len(key) > 128:
            raise AuthenticationError("malformed API key")
        key_id, secret = parts
        rows, _ = self._run(
            "SELECT hash, name, roles, tenants, revoked FROM {t} WHERE key_id = ?", (key_id,)
        )
        row = rows[0] if rows else None
        if row is None or not hmac.compare_digest(row[0], _digest(secret)):
            raise AuthenticationError("unknown API key")
        if row[4]:
            raise AuthenticationError(f"API key {key_id} is revoked")
        return Identity(
            subject=f"service:{row[1]}",
            kind="service",
            verified=True,
            roles=frozenset(json.loads(row[2])),
            tenants=frozenset(json.loads(row[3])),
            username=row[1],
            issuer="agent-platform:api-key",
            client_id=key_id,
        )


class PostgresApiKeyStore(ApiKeyStore):
    """Production API keys: one table in PostgreSQL, shared by every gateway host."""

    table = "agent_platform_security.api_keys"

    def __init__(self, url: str) -> None:
        self.url = url
        self._run("CREATE SCHEMA IF NOT EXISTS agent_platform_security")
        self._run(_TABLE.format(t=self.table))

    def _run(
        self, query: str, params: tuple[object, ...] = ()
    ) -> tuple[list[tuple[Any, ...]], int]:
        import psycopg

        statement = query.format(t=self.table).replace("?", "%s")
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
            return rows, cursor.rowcount


def open_api_key_store(settings: Settings) -> ApiKeyStore:
    """PostgreSQL in production (its URL is required there), SQLite under the home locally."""
    if settings.profile == "production":
        if not settings.postgres_url:
            raise ValueError("API keys: the production profile keeps them in PostgreSQL; set "
                             "AGENT_PLATFORM_POSTGRES_URL")  # fmt: skip
        return PostgresApiKeyStore(settings.postgres_url)
    return ApiKeyStore(settings.home_dir / "security" / "api_keys.sqlite")
