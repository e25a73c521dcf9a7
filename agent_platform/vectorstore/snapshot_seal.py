"""Encryption of index snapshots: the chunk text is sealed, the file checksums are authenticated.

Snapshots are what gets copied off the machine (backups), so the words of the tenants' documents
in them are sealed with the tenant's data key (AES-256-GCM, the same `ValueCipher` as the stores,
bound to tenant, snapshot and chunk id). The keyword index would give the words away, so the
embedded store leaves it out of a sealed snapshot and rebuilds it from the decrypted text on
restore. Vectors, chunk ids, sources and metadata (document hash, position, PII types) stay as
they are, as in the live index.

The manifest's file checksums are sealed too (`sealed_files`), so any changed byte of a snapshot
(a vector, a deleted row, a re-computed checksum) is refused on restore, not only a changed text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent_platform.security.crypto import EncryptionError, ValueCipher

TEXT_TABLE = "index snapshot text"
FILES_TABLE = "index snapshot files"
BATCH = 1000


def _texts(conn: sqlite3.Connection) -> Iterator[tuple[int, str, str]]:
    """(label, chunk id, text) of every chunk, read in batches (the caller updates as it goes)."""
    last = -1
    while rows := conn.execute(
        "SELECT label, chunk_id, text FROM chunks WHERE label > ? ORDER BY label LIMIT ?",
        (last, BATCH),
    ).fetchall():
        yield from rows
        last = rows[-1][0]


def text_record(snapshot_id: str, chunk_id: str) -> str:
    return f"{snapshot_id}/{chunk_id}"


def seal_text(cipher: ValueCipher, tenant: str, snapshot_id: str, chunk_id: str, text: str) -> str:
    return cipher.seal(tenant, TEXT_TABLE, text_record(snapshot_id, chunk_id), text)


def open_text(
    cipher: ValueCipher, tenant: str, snapshot_id: str, chunk_id: str, stored: str
) -> str:
    return cipher.open(tenant, TEXT_TABLE, text_record(snapshot_id, chunk_id), stored)


def encryption_entry(
    cipher: ValueCipher, tenant: str, snapshot_id: str, files: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The manifest fields that say what is sealed (empty when encryption is off)."""
    if not cipher.enabled:
        return {}
    return {
        "encryption": {
            "cipher": "AES-256-GCM",
            "key": "the tenant's data key",
            "sealed": ["chunk text", "file checksums"],
            "plain": ["vectors", "chunk ids", "sources", "metadata"],
            "keyword_index": "left out; rebuilt from the decrypted text on restore",
        },
        "sealed_files": cipher.seal(tenant, FILES_TABLE, snapshot_id, json.dumps(files)),
    }


def seal_problems(cipher: ValueCipher, manifest: dict[str, Any], tenant: str) -> list[str]:
    """Why the manifest's checksums cannot be trusted under `cipher` (empty when they can).

    A snapshot without `sealed_files` was taken with encryption off: it restores when
    encryption is off, or on with `accept_plaintext`; the cipher refuses it otherwise.
    """
    snapshot_id = str(manifest.get("snapshot_id"))
    try:
        opened = cipher.open(tenant, FILES_TABLE, snapshot_id, manifest.get("sealed_files") or "")
    except EncryptionError as exc:
        return [str(exc)]
    if opened and json.loads(opened) != manifest.get("files"):
        return ["its files do not match the checksums sealed when it was taken (tampered)"]
    return []


def seal_records(db: Path, tenant: str, snapshot_id: str, cipher: ValueCipher) -> None:
    """Seal every chunk text of the copy `db` and empty its keyword index, in place.

    The chunks table has no UPDATE trigger, so the (external-content) FTS index is untouched by
    the updates and then emptied with its own `delete-all` command. The caller VACUUMs the copy
    INTO the snapshot, so no freed page with plaintext reaches it.
    """
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for label, chunk_id, text in _texts(conn):
            conn.execute(
                "UPDATE chunks SET text = ? WHERE label = ?",
                (seal_text(cipher, tenant, snapshot_id, chunk_id, text), label),
            )
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('delete-all')")
        conn.execute("COMMIT")
    finally:
        conn.close()


def open_records(db: Path, tenant: str, snapshot_id: str, cipher: ValueCipher) -> None:
    """Decrypt every chunk text of the staged copy `db` and rebuild its keyword index, in place.

    Raises the cipher's `EncryptionError` (nothing is committed) when a text does not open.
    """
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for label, chunk_id, stored in _texts(conn):
            text = open_text(cipher, tenant, snapshot_id, chunk_id, stored)
            if text != stored:
                conn.execute("UPDATE chunks SET text = ? WHERE label = ?", (text, label))
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
