"""LangChain adapters over the real embedding model and the embedded store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from agent_platform.langchain_adapters import PlatformEmbeddings, PlatformVectorStore
from agent_platform.vectorstore.embedded import EmbeddedVectorStore

TEXTS = [
    "To reset your password, open Settings and click 'Forgot password'.",
    "Our refund policy allows returns within 30 days of purchase.",
    "The mitochondrion is the powerhouse of the cell.",
    "Espresso is brewed by forcing hot water through ground coffee.",
    "Error code QX-7731 means the payment gateway rejected the certificate.",
]
METAS = [
    {"source": "faq.md", "topic": "account"},
    {"source": "faq.md", "topic": "billing"},
    {"source": "wiki.html", "topic": "science"},
    {"source": "recipes.md", "topic": "food"},
    {"source": "runbook.md", "topic": "ops", "document_id": "runbook"},
]


@pytest.fixture
def vs(embedder, tmp_path: Path) -> PlatformVectorStore:
    store = EmbeddedVectorStore(tmp_path / "index")
    vs = PlatformVectorStore(store, embedder, tenant="acme")
    vs.add_texts(TEXTS, METAS, ids=[f"t{i}" for i in range(len(TEXTS))])
    return vs


def test_embeddings_are_unit_vectors(embedder) -> None:
    emb = PlatformEmbeddings(embedder)
    docs = emb.embed_documents(TEXTS[:2])
    query = emb.embed_query("how do I change my password")
    assert len(docs) == 2 and len(query) == 384
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-4)
    assert np.dot(query, docs[0]) > np.dot(query, docs[1])
    with pytest.raises(ValueError, match="empty"):
        emb.embed_query(" ")


def test_similarity_search_and_scores(vs) -> None:
    docs = vs.similarity_search("I forgot my login credentials", k=2)
    assert isinstance(docs[0], Document) and docs[0].id == "t0"
    assert docs[0].metadata["source"] == "faq.md" and docs[0].metadata["topic"] == "account"
    scored = vs.similarity_search_with_score("which organelle makes energy", k=3, mode="vector")
    assert scored[0][0].id == "t2" and all(0.0 <= s <= 1.0 for _, s in scored)
    assert vs.similarity_search("QX-7731", k=1, mode="keyword")[0].metadata["document_id"] == (
        "runbook"
    )
    filtered = vs.similarity_search("password", k=5, filter={"source": "faq.md"})
    assert {d.id for d in filtered} == {"t0", "t1"}
    relevance = vs.similarity_search_with_relevance_scores("coffee", k=1)
    assert relevance[0][0].id == "t3" and 0.0 <= relevance[0][1] <= 1.0


def test_search_by_vector_and_delete(vs, embedder) -> None:
    vector = embedder.embed_query("brewing coffee").tolist()
    assert vs.similarity_search_by_vector(vector, k=1)[0].id == "t3"
    assert vs.delete(["t3"]) is True
    assert "t3" not in [d.id for d in vs.similarity_search_by_vector(vector, k=5)]


def test_retriever_and_from_texts(embedder) -> None:
    vs = PlatformVectorStore.from_texts(TEXTS, PlatformEmbeddings(embedder), metadatas=METAS)
    retriever = vs.as_retriever(search_kwargs={"k": 2})
    docs = retriever.invoke("how long do I have to return a purchase")
    assert docs[0].page_content == TEXTS[1] and len(docs) == 2
    threshold = vs.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.5, "k": 5}
    )
    relevant = threshold.invoke("password reset")
    assert relevant and all(isinstance(d, Document) for d in relevant)
    # The password text is the top hit; the unrelated ones score below the threshold.
    assert [d.page_content for d in relevant] == [TEXTS[0]]


def test_add_texts_length_mismatch(vs) -> None:
    with pytest.raises(ValueError, match="same length"):
        vs.add_texts(["a", "b"], [{}], ids=["x", "y"])
