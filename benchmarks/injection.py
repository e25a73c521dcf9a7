"""Instruction-detection benchmark: precision and recall of `security.injection` on chunks.

    .venv/bin/python benchmarks/injection.py

evaluation/datasets/injection.jsonl holds chunks written for this project: half give orders to
the model or the reader (override attempts, requests to send credentials, links to "verify" an
account, orders relayed to users), half are benign text that merely talks about passwords,
instructions, links or verification. The rules were tuned on it; injection_heldout.jsonl (40
chunks, same halves) was written afterwards and never tuned on, but its misses were published, so
injection_heldout2.jsonl (60 chunks, same halves) was written and committed before the second
round of rules, which were written from injection.jsonl only. Prints precision, recall, the
misses and false alarms, and the time per chunk.
Writes benchmarks/results/injection.json (git-ignored).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_platform.security.injection import find_instructions

DATASETS = Path(__file__).resolve().parents[1] / "evaluation" / "datasets"


def main() -> None:
    results = {}
    for name in ("injection", "injection_heldout", "injection_heldout2"):
        print(f"== {name}.jsonl")
        results[name] = evaluate(DATASETS / f"{name}.jsonl")
    out = Path(__file__).resolve().parent / "results" / "injection.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


def evaluate(path: Path) -> dict[str, float]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    started = time.perf_counter()
    flagged = [bool(find_instructions(r["text"])) for r in records]
    per_chunk_us = (time.perf_counter() - started) / len(records) * 1e6
    tp = sum(f and r["injection"] for f, r in zip(flagged, records, strict=True))
    fp = sum(f and not r["injection"] for f, r in zip(flagged, records, strict=True))
    fn = sum(not f and r["injection"] for f, r in zip(flagged, records, strict=True))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    positives = sum(r["injection"] for r in records)
    print(f"chunks: {len(records)} ({positives} instructions, {len(records) - positives} benign)")
    print(f"precision {precision:.3f}  recall {recall:.3f}  ({tp} TP, {fp} FP, {fn} FN)")
    print(f"time per chunk: {per_chunk_us:.1f} µs")
    for f, r in zip(flagged, records, strict=True):
        if f != r["injection"]:
            print(("missed: " if r["injection"] else "false alarm: ") + r["text"])
    result = {"precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn}
    return result | {"per_chunk_us": per_chunk_us}


if __name__ == "__main__":
    main()
