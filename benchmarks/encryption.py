"""Encryption-at-rest benchmark: what sealing adds to a request's memory writes and reads.

    .venv/bin/python benchmarks/encryption.py [--requests 500]

Per "request", the writes the runtime makes (one conversation version, two short-term entries
and a working-memory record, in one SQLite transaction) then the reads of the next request
(current conversation, recent short-term entries), on a fresh SQLite file, with the plaintext
cipher and with AES-256-GCM (local key file), interleaved in alternating blocks. Also one
seal + open of a 1 KB value. Writes benchmarks/results/encryption.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from agent_platform.runtime.memory import (
    MemoryScope,
    SQLiteConversationStore,
    SQLiteShortTermMemory,
    SQLiteWorkingMemory,
    Turn,
    write_together,
)
from agent_platform.security.crypto import PLAINTEXT, value_cipher
from agent_platform.settings import Settings

QUESTION = "How long do refunds take to be paid back to the original payment method? " * 2
ANSWER = "Refunds are paid back to the original payment method within 5 business days [1]. " * 4


def _stores(path: Path, cipher):
    return (
        SQLiteConversationStore(path, cipher=cipher),
        SQLiteShortTermMemory(path, cipher=cipher),
        SQLiteWorkingMemory(path, cipher=cipher),
    )


def _request(stores, n: int) -> float:
    conversation, short_term, working = stores
    scope = MemoryScope("bench", f"user{n % 20}", f"session{n % 50}")
    meta = {"trace_id": f"t{n}"}
    started = time.perf_counter()
    with write_together(conversation, short_term, working):
        version = conversation.append(
            scope, [Turn("user", QUESTION, meta), Turn("assistant", ANSWER, meta)]
        ).version
        short_term.add_many(scope, [("user", QUESTION, meta), ("assistant", ANSWER, meta)])
        working.put(scope, f"request:t{n}", {"status": "answered", "state_version": version})
    conversation.current(scope)
    short_term.recent(scope)
    return (time.perf_counter() - started) * 1000.0


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-enc-"))
    settings = Settings(home=home)
    cipher = value_cipher(settings)
    runs = {
        "plaintext": _stores(home / "plain.sqlite", PLAINTEXT),
        "aes-256-gcm": _stores(home / "sealed.sqlite", cipher),
    }
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for block in range(0, args.requests, 50):
        for name, stores in runs.items():
            timings[name] += [_request(stores, n) for n in range(block, block + 50)]
    value = "x" * 1024
    seal_open = []
    for n in range(2000):
        started = time.perf_counter()
        cipher.open("bench", "t", str(n), cipher.seal("bench", "t", str(n), value))
        seal_open.append((time.perf_counter() - started) * 1e6)
    result = {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "requests": args.requests,
        "memory_ms": {
            name: {q: round(_pct(t, p), 3) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
            for name, t in timings.items()
        },
        "seal_open_1kb_us_p50": round(statistics.median(seal_open), 1),
    }
    out = Path(__file__).parent / "results" / "encryption.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
