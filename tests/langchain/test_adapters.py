"""LangChain adapters over the real embedding model, on each store backend: what the standard
suites do not cover (loader metadata, mixed ids, delete-all, MMR, retrievers in a chain)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from agent_platform.langchain_adapters import PlatformEmbeddings, PlatformVectorStore
from agent_platform.runtime.models.extractive import ExtractiveAnswerer
from agent_platform.runtime.sources import format_sources

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
# What common document loaders put in metadata (PyPDF, Unstructured, text splitters), plus user
# keys that the adapter used to drop or overwrite.
LOADER_METADATA = {
    "source": "docs/manual.pdf",
    "page": 4,
    "total_pages": 12,
    "loc": {"lines": {"from": 3, "to": 17}},
    "pdf.version": "1.7",
    "languages": ["eng"],
    "coordinates": {"points": [[1.5, 2.0], [3.0, 4.25]], "system": "PixelSpace", "layout": None},
    "chunk_id": "mine",
    "document_id": "manual",
    "score": "A+",
}
PASSWORD_TEXTS = [
    "To reset your password, open Settings and click 'Forgot password'.",
    "You can reset a forgotten password from the Settings page with 'Forgot password'.",
    "Password reset: go to Settings, then choose 'Forgot password' and follow the email link.",
]
OTHER_TEXTS = [
    "Two-factor authentication adds a second step when you sign in.",
    "Our refund policy allows returns within 30 days of purchase.",
]


@pytest.fixture
def vs(embedder, lc_store, lc_tenant) -> PlatformVectorStore:
    vs = PlatformVectorStore(lc_store, embedder, tenant=lc_tenant)
    vs.add_texts(TEXTS, METAS, ids=[f"t{i}" for i in range(len(TEXTS))])
    return vs


@pytest.fixture
def empty_vs(embedder, lc_store, lc_tenant) -> PlatformVectorStore:
    return PlatformVectorStore(lc_store, embedder, tenant=lc_tenant)


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
    assert docs[0] == Document(id="t0", page_content=TEXTS[0], metadata=METAS[0])
    scored = vs.similarity_search_with_score("which organelle makes energy", k=3, mode="vector")
    assert scored[0][0].id == "t2" and all(0.0 <= s <= 1.0 for _, s in scored)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    assert vs.similarity_search("QX-7731", k=1, mode="keyword")[0].metadata == METAS[4]
    filtered = vs.similarity_search("password", k=5, filter={"source": "faq.md"})
    assert {d.id for d in filtered} == {"t0", "t1"}
    relevance = vs.similarity_search_with_relevance_scores("coffee", k=1)
    assert relevance[0][0].id == "t3" and 0.0 <= relevance[0][1] <= 1.0


def test_loader_metadata_round_trips_exactly(empty_vs) -> None:
    """Nested values, dotted keys and keys named like record fields come back as stored."""
    doc = Document(page_content=TEXTS[0], metadata=LOADER_METADATA)
    other = Document(page_content=TEXTS[1], metadata={"source": "faq.md"})
    ids = empty_vs.add_documents([doc, other])
    expected = Document(id=ids[0], page_content=TEXTS[0], metadata=LOADER_METADATA)
    assert empty_vs.get_by_ids([ids[0]]) == [expected]
    assert empty_vs.similarity_search("reset my password", k=1) == [expected]
    (found, score), _ = empty_vs.similarity_search_with_score("reset my password", k=2)
    assert found == expected and 0.0 < score <= 1.0
    assert empty_vs.max_marginal_relevance_search("reset my password", k=1) == [expected]
    by_source = empty_vs.similarity_search("password", k=5, filter={"source": "docs/manual.pdf"})
    assert by_source == [expected]
    assert empty_vs.similarity_search("password", k=5, filter={"page": 4}) == [expected]
    assert doc.metadata == LOADER_METADATA and doc.id is None  # the input is not mutated


def test_some_ids_given_some_not(empty_vs) -> None:
    ids = empty_vs.add_documents(
        [Document(id="mine", page_content=TEXTS[0]), Document(page_content=TEXTS[1])]
    )
    assert ids[0] == "mine" and isinstance(ids[1], str) and ids[1]
    more = empty_vs.add_texts(TEXTS[2:4], ids=[None, "x"])
    assert more[1] == "x" and more[0] not in ids
    got = empty_vs.get_by_ids([*ids, *more])
    assert [d.page_content for d in got] == TEXTS[:4]
    with pytest.raises(ValueError, match=r"ids\[0\] must be a string or None, got int"):
        empty_vs.add_texts(["a"], ids=[7])


def test_bad_metadata_is_rejected_naming_the_key(empty_vs) -> None:
    doc = Document(page_content="x", metadata={"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match=r"metadata\['when'\] must be JSON data.*datetime"):
        empty_vs.add_documents([doc], ids=["bad"])
    assert empty_vs.get_by_ids(["bad"]) == []


def test_search_by_vector_and_delete(vs, embedder) -> None:
    vector = embedder.embed_query("brewing coffee").tolist()
    assert vs.similarity_search_by_vector(vector, k=1)[0].id == "t3"
    assert vs.delete(["t3"]) is True
    assert "t3" not in [d.id for d in vs.similarity_search_by_vector(vector, k=5)]


def test_delete_without_ids_deletes_everything(vs) -> None:
    assert vs.delete() is True
    assert vs.similarity_search("password", k=5) == [] and vs.get_by_ids(["t0"]) == []
    assert vs.add_texts(["Still usable after deleting everything."], ids=["n"]) == ["n"]
    assert [d.id for d in vs.similarity_search("usable", k=5)] == ["n"]


async def test_async_delete_without_ids(vs) -> None:
    assert await vs.adelete() is True
    assert await vs.asimilarity_search("password", k=5) == []


@pytest.fixture
def near_duplicates(empty_vs) -> PlatformVectorStore:
    texts = PASSWORD_TEXTS + OTHER_TEXTS
    empty_vs.add_texts(texts, ids=[f"p{i}" for i in range(3)] + ["o0", "o1"])
    return empty_vs


def _password_docs(docs: list[Document]) -> int:
    return sum(d.page_content in PASSWORD_TEXTS for d in docs)


def test_mmr_trades_similarity_for_diversity(near_duplicates, embedder) -> None:
    query = "I forgot my password, how do I reset it?"
    assert _password_docs(near_duplicates.similarity_search(query, k=2)) == 2
    mmr = near_duplicates.max_marginal_relevance_search(query, k=2, fetch_k=5, lambda_mult=0.25)
    assert len(mmr) == 2 and mmr[0].page_content in PASSWORD_TEXTS and _password_docs(mmr) == 1
    vector = embedder.embed_query(query).tolist()
    by_vector = near_duplicates.max_marginal_relevance_search_by_vector(
        vector, k=2, fetch_k=5, lambda_mult=0.25
    )
    assert _password_docs(by_vector) == 1
    # lambda 1 is plain similarity
    assert _password_docs(near_duplicates.max_marginal_relevance_search(query, k=2, lambda_mult=1))
    retriever = near_duplicates.as_retriever(
        search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5, "lambda_mult": 0.25}
    )
    assert _password_docs(retriever.invoke(query)) == 1
    with pytest.raises(ValueError, match="lambda_mult"):
        near_duplicates.max_marginal_relevance_search(query, lambda_mult=2)


async def test_async_mmr_and_search(near_duplicates) -> None:
    query = "I forgot my password, how do I reset it?"
    mmr = await near_duplicates.amax_marginal_relevance_search(
        query, k=2, fetch_k=5, lambda_mult=0.25
    )
    assert _password_docs(mmr) == 1
    scored = await near_duplicates.asimilarity_search_with_score(query, k=2)
    assert _password_docs([d for d, _ in scored]) == 2 and all(0 < s <= 1 for _, s in scored)


def _format(docs: list[Document]) -> str:
    return format_sources([(d.metadata.get("source", "?"), d.page_content) for d in docs])


async def test_retriever_in_a_chain(vs) -> None:
    """`as_retriever()` feeding a prompt and the platform's extractive model, sync and async."""
    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n\nQuestion: {question}")])
    chain = (
        {
            "context": vs.as_retriever(search_kwargs={"k": 2}) | _format,
            "question": RunnablePassthrough(),
        }
        | prompt
        | ExtractiveAnswerer()
        | StrOutputParser()
    )
    answer = chain.invoke("How many days do I have to return a purchase?")
    assert "within 30 days of purchase" in answer and answer.endswith("[1]")
    assert await chain.ainvoke("How many days do I have to return a purchase?") == answer


def test_retriever_threshold_and_from_texts(embedder) -> None:
    vs = PlatformVectorStore.from_texts(TEXTS, PlatformEmbeddings(embedder), metadatas=METAS)
    docs = vs.as_retriever(search_kwargs={"k": 2}).invoke("how long do I have to return a purchase")
    assert docs[0].page_content == TEXTS[1] and len(docs) == 2
    threshold = vs.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.5, "k": 5}
    )
    # The password text is the top hit; the unrelated ones score below the threshold.
    assert [d.page_content for d in threshold.invoke("password reset")] == [TEXTS[0]]


def test_add_texts_length_mismatch(vs) -> None:
    with pytest.raises(ValueError, match="same length"):
        vs.add_texts(["a", "b"], [{}], ids=["x", "y"])
