"""Snapshot encryption benchmark: what sealing the text adds to an index backup and restore.

    .venv/bin/python benchmarks/snapshot_encryption.py [--chunks 5000] [--rounds 3]

One embedded tenant of `--chunks` chunks (about 600 characters of text each, random unit
384-dimensional vectors: the vectors only need the right size here), backed up and restored with
the plaintext cipher and with AES-256-GCM (a local key ring), alternating. Reports the median
seconds of each and the snapshot's size. Writes benchmarks/results/snapshot_encryption.json
(git-ignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_platform.security.crypto import PLAINTEXT, FieldCipher
from agent_platform.security.crypto.kek import LocalKeyFile
from agent_platform.security.crypto.keyring import KeyRing
from agent_platform.security.crypto.keystore import SQLiteDataKeyStore
from agent_platform.vectorstore.base import ChunkRecord
from agent_platform.vectorstore.embedded import EmbeddedVectorStore

WORDS = [
    "refund",
    "invoice",
    "shipping",
    "warehouse",
    "password",
    "policy",
    "customer",
    "account",
    "order",
    "delivery",
]


def records(n: int) -> list[ChunkRecord]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        ChunkRecord(
            chunk_id=f"c{i}",
            document_id=f"d{i // 10}",
            source=f"doc{i // 10}.md",
            text=" ".join(rng.choice(WORDS, 85)),
            vector=vectors[i],
            metadata={"position": i % 10},
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ring = KeyRing(
            LocalKeyFile(root / "keys" / "kek.json", create=True),
            SQLiteDataKeyStore(root / "keys" / "data_keys.sqlite"),
        )
        ciphers = {"plaintext": PLAINTEXT, "aes-256-gcm": FieldCipher(ring)}
        store = EmbeddedVectorStore(root / "index", snapshots_dir=root / "snapshots")
        store.upsert("bench", records(args.chunks))
        times: dict[str, dict[str, list[float]]] = {
            name: {"backup": [], "restore": []} for name in ciphers
        }
        sizes: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, cipher in ciphers.items():
                started = time.perf_counter()
                info = store.backup("bench", root / "snapshots", cipher)
                times[name]["backup"].append(time.perf_counter() - started)
                sizes[name] = sum(p.stat().st_size for p in Path(info.location).iterdir())
                started = time.perf_counter()
                store.restore("bench", root / "snapshots", info.snapshot_id, cipher)
                times[name]["restore"].append(time.perf_counter() - started)
        store.close()
    result = {
        name: {op: statistics.median(values) for op, values in ops.items()} | {"bytes": sizes[name]}
        for name, ops in times.items()
    }
    print(f"{args.chunks} chunks, median of {args.rounds} rounds")
    print("| cipher | backup (s) | restore (s) | snapshot (MB) |")
    print("|---|---:|---:|---:|")
    for name, row in result.items():
        print(f"| {name} | {row['backup']:.2f} | {row['restore']:.2f} | {row['bytes'] / 1e6:.1f} |")
    out = Path(__file__).resolve().parent / "results" / "snapshot_encryption.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"result": result, "machine": platform.node()}, indent=2))


if __name__ == "__main__":
    main()
