"""Deterministic synthetic corpora for the benchmarks (no downloads)."""

from __future__ import annotations

import random
from pathlib import Path

TOPICS = [
    "index",
    "snapshot",
    "tenant",
    "prompt",
    "router",
    "embedding",
    "schedule",
    "sensor",
    "latency",
    "budget",
    "retry",
    "fallback",
    "memory",
    "session",
    "token",
    "version",
    "evaluation",
    "registry",
    "alias",
    "checkpoint",
    "backup",
    "cluster",
    "replica",
    "shard",
]
WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "and",
    "in",
    "for",
    "on",
    "with",
    "by",
    "from",
    "that",
    "which",
    "each",
    "every",
    "when",
    "while",
    "after",
    "before",
    "system",
    "service",
    "request",
    "response",
    "model",
    "agent",
    "pipeline",
    "asset",
    "materialization",
    "check",
    "policy",
    "operator",
    "engineer",
    "customer",
    "document",
    "chunk",
    "vector",
    "query",
    "result",
    "score",
    "threshold",
    "limit",
    "window",
    "stores",
    "returns",
    "updates",
    "records",
    "measures",
    "validates",
    "rejects",
    "accepts",
    "rebuilds",
    "restores",
    "keeps",
    "quickly",
    "safely",
    "daily",
    "weekly",
    "carefully",
    "automatically",
    "reliably",
]


def paragraph(rng: random.Random, words: int) -> str:
    topic = rng.choice(TOPICS)
    body = [rng.choice(WORDS) if i % 7 else topic for i in range(words)]
    sentences, sentence = [], []
    for word in body:
        sentence.append(word)
        if len(sentence) >= rng.randint(8, 14):
            sentences.append(" ".join(sentence).capitalize() + ".")
            sentence = []
    if sentence:
        sentences.append(" ".join(sentence).capitalize() + ".")
    return f"{topic.title()} note {rng.randint(0, 10**9)}. " + " ".join(sentences)


def write_corpus(root: Path, documents: int, seed: int = 0, words: int = 45) -> list[Path]:
    """`documents` Markdown files of one short paragraph each (about one chunk per file)."""
    rng = random.Random(seed)
    paths = []
    for number in range(documents):
        folder = root / f"part{number // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"doc{number:06d}.md"
        path.write_text(f"# Document {number}\n\n{paragraph(rng, words)}\n", encoding="utf-8")
        paths.append(path)
    return paths


def change_documents(paths: list[Path], fraction: float, seed: int = 1) -> int:
    """Rewrite a fraction of the documents with new text; returns how many changed."""
    rng = random.Random(seed)
    chosen = rng.sample(paths, max(1, int(len(paths) * fraction)))
    for path in chosen:
        path.write_text(f"# Revised\n\n{paragraph(rng, 45)}\n", encoding="utf-8")
    return len(chosen)
