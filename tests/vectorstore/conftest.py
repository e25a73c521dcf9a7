"""Fixtures for the vector store contract suite: a small real corpus and one store per backend."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from agent_platform.vectorstore.base import ChunkRecord

# (chunk_id, document_id, source, text, metadata)
CORPUS: list[tuple[str, str, str, str, dict]] = [
    (
        "faq-1",
        "faq",
        "faq.md",
        "To reset your password, open Settings, choose Security and click 'Forgot password'.",
        {"topic": "account", "public": True},
    ),
    (
        "faq-2",
        "faq",
        "faq.md",
        "Our refund policy allows returns within 30 days of purchase with the original receipt.",
        {"topic": "billing", "public": True},
    ),
    (
        "faq-3",
        "faq",
        "faq.md",
        "Invoices are emailed to the account owner on the first business day of each month.",
        {"topic": "billing", "public": True},
    ),
    (
        "faq-4",
        "faq",
        "faq.md",
        "You can export all your data as a CSV file from the Reports page.",
        {"topic": "account", "public": True},
    ),
    (
        "faq-5",
        "faq",
        "faq.md",
        "Two-factor authentication can be enabled with any authenticator app.",
        {"topic": "account", "public": True},
    ),
    (
        "faq-6",
        "faq",
        "faq.md",
        "Shipping to Europe usually takes five to seven business days.",
        {"topic": "shipping", "public": True},
    ),
    (
        "bio-1",
        "biology",
        "wiki.html",
        "The mitochondrion is the powerhouse of the cell and produces most of its ATP.",
        {"topic": "science", "public": True},
    ),
    (
        "bio-2",
        "biology",
        "wiki.html",
        "Photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen.",
        {"topic": "science", "public": True},
    ),
    (
        "bio-3",
        "biology",
        "wiki.html",
        "The zebrafish can regenerate its heart muscle after an injury.",
        {"topic": "science", "public": True},
    ),
    (
        "bio-4",
        "biology",
        "wiki.html",
        "DNA is a double helix made of two strands of nucleotides.",
        {"topic": "science", "public": True},
    ),
    (
        "bio-5",
        "biology",
        "wiki.html",
        "Honey bees communicate the location of flowers with a waggle dance.",
        {"topic": "science", "public": True},
    ),
    (
        "geo-1",
        "geography",
        "wiki.html",
        "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
        {"topic": "travel", "public": True},
    ),
    (
        "geo-2",
        "geography",
        "wiki.html",
        "Mount Everest is the highest mountain above sea level, on the border of Nepal and China.",
        {"topic": "travel", "public": True},
    ),
    (
        "geo-3",
        "geography",
        "wiki.html",
        "The Amazon river carries more water than any other river in the world.",
        {"topic": "travel", "public": True},
    ),
    (
        "geo-4",
        "geography",
        "wiki.html",
        "Venice is built on more than one hundred small islands in a lagoon.",
        {"topic": "travel", "public": True},
    ),
    (
        "ops-1",
        "runbook",
        "handbook.pdf",
        "If the database disk is full, delete old WAL archives before restarting the primary.",
        {"topic": "ops", "public": False},
    ),
    (
        "ops-2",
        "runbook",
        "handbook.pdf",
        "The Kubernetes scheduler assigns pods to nodes based on their resource requests.",
        {"topic": "ops", "public": False},
    ),
    (
        "ops-3",
        "runbook",
        "handbook.pdf",
        "Error code QX-7731 means the payment gateway rejected the merchant certificate.",
        {"topic": "ops", "public": False},
    ),
    (
        "ops-4",
        "runbook",
        "handbook.pdf",
        "Rotate the TLS certificates every ninety days using the renewal job.",
        {"topic": "ops", "public": False},
    ),
    (
        "ops-5",
        "runbook",
        "handbook.pdf",
        "Page the on-call engineer when the error rate exceeds two percent for five minutes.",
        {"topic": "ops", "public": False},
    ),
    (
        "food-1",
        "kitchen",
        "recipes.md",
        "Espresso is brewed by forcing hot water through finely ground coffee beans.",
        {"topic": "food", "public": True},
    ),
    (
        "food-2",
        "kitchen",
        "recipes.md",
        "Knead the bread dough for ten minutes until it becomes smooth and elastic.",
        {"topic": "food", "public": True},
    ),
    (
        "food-3",
        "kitchen",
        "recipes.md",
        "A classic risotto needs arborio rice, warm stock and constant stirring.",
        {"topic": "food", "public": True},
    ),
    (
        "food-4",
        "kitchen",
        "recipes.md",
        "Store fresh basil at room temperature in a glass of water.",
        {"topic": "food", "public": True},
    ),
    (
        "hist-1",
        "history",
        "wiki.html",
        "The printing press was invented by Johannes Gutenberg around 1440.",
        {"topic": "history", "public": True},
    ),
    (
        "hist-2",
        "history",
        "wiki.html",
        "The Roman Empire was divided into eastern and western halves in 395.",
        {"topic": "history", "public": True},
    ),
    (
        "hist-3",
        "history",
        "wiki.html",
        "Apollo 11 landed the first humans on the Moon in July 1969.",
        {"topic": "history", "public": True},
    ),
    (
        "hist-4",
        "history",
        "wiki.html",
        "The Berlin Wall fell in November 1989, leading to German reunification.",
        {"topic": "history", "public": True},
    ),
]

WEAVIATE_SKIP = "WEAVIATE_URL is not set: Weaviate contract tests need a running server"


@pytest.fixture(scope="session")
def corpus_records(embedder) -> list[ChunkRecord]:
    vectors = embedder.embed_texts([c[3] for c in CORPUS])
    return [
        ChunkRecord(chunk_id=c, document_id=d, source=s, text=t, vector=v, metadata=m)
        for (c, d, s, t, m), v in zip(CORPUS, vectors, strict=True)
    ]


@pytest.fixture
def snapshots_dir(tmp_path: Path) -> Path:
    return tmp_path / "snapshots"


@pytest.fixture(params=["embedded", "weaviate"])
def store(request: pytest.FixtureRequest, tmp_path: Path, snapshots_dir: Path):
    """The same contract suite runs against each backend."""
    if request.param == "embedded":
        from agent_platform.vectorstore.embedded import EmbeddedVectorStore

        s = EmbeddedVectorStore(tmp_path / "index", snapshots_dir=snapshots_dir)
        yield s
        s.close()
        return
    url = os.environ.get("WEAVIATE_URL")
    if not url:
        print(WEAVIATE_SKIP)
        pytest.skip(WEAVIATE_SKIP)
    from agent_platform.vectorstore.weaviate_store import WeaviateVectorStore

    name = f"Test{uuid.uuid4().hex[:10]}"
    s = WeaviateVectorStore(url, collection=name, snapshots_dir=snapshots_dir)
    yield s
    s._client.collections.delete(name)
    s.close()


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)
