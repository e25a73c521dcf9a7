"""Keyword and hybrid score scales (issue 8, item 10): a strong sole match scores high in any
tenant, so `min_score` keeps it; real embeddings, every backend, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agent_platform.vectorstore.base import ChunkRecord, SearchMode

T = "card"
PIN = "The corporate card PIN is 4417. Keep it secret."
OTHERS = ["Book flights through the travel portal.", "The canteen opens at noon."]


def _records(embedder, texts: list[str]) -> list[ChunkRecord]:
    vectors = embedder.embed_texts(texts)
    return [
        ChunkRecord(chunk_id=f"c{i}", document_id=f"d{i}", source=f"{i}.md", text=t, vector=v)
        for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
    ]


def test_sole_chunk_of_a_tenant_scores_high(store, embedder) -> None:
    """One chunk in the tenant: BM25's document frequency made its score 0.0 before."""
    store.upsert(T, _records(embedder, [PIN]))
    question = "What is the corporate card PIN?"
    hits = store.search(
        T, query_text=question, query_vector=None, k=3, mode=SearchMode.KEYWORD, min_score=0.1
    )
    assert [(h.chunk_id, h.score) for h in hits] == [("c0", 1.0)]


def test_keyword_score_is_the_share_of_content_words_found(store, embedder) -> None:
    store.upsert(T, _records(embedder, [PIN, *OTHERS]))

    def keyword(text: str, min_score: float | None = None) -> list[tuple[str, float]]:
        hits = store.search(
            T, query_text=text, query_vector=None, k=5, mode="keyword", min_score=min_score
        )
        return [(h.chunk_id, round(h.score, 3)) for h in hits]

    assert keyword("corporate card PIN", min_score=0.1) == [("c0", 1.0)]
    assert keyword("corporate card PIN number") == [("c0", 0.75)]  # 3 of 4 content words
    # "the" is in every chunk: a stop word alone is no keyword hit, and costs nothing
    assert keyword("the corporate card") == [("c0", 1.0)]
    assert sorted(keyword("canteen portal")) == [("c1", 0.5), ("c2", 0.5)]
    assert keyword("xylophone") == []
    assert keyword("the") != []  # a query of stop words only still matches on them


def test_hybrid_sole_match_scores_high(store, embedder) -> None:
    store.upsert(T, _records(embedder, [PIN, *OTHERS]))
    question = "What is the corporate card PIN?"
    vector = embedder.embed_texts([question])[0]
    hits = store.search(
        T, query_text=question, query_vector=vector, k=3, mode=SearchMode.HYBRID, min_score=0.7
    )
    assert [h.chunk_id for h in hits] == ["c0"]  # first in both rankings
    assert hits[0].score >= 0.95


def test_cli_keyword_search_keeps_the_only_match(platform_home: Path, tmp_path: Path) -> None:
    from agent_platform.cli.main import app

    corpus = tmp_path / "kb"
    corpus.mkdir()
    (corpus / "card.md").write_text(f"# Cards\n\n{PIN}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--tenant", T, str(corpus), "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "search",
            "--tenant",
            T,
            "--mode",
            "keyword",
            "--min-score",
            "0.1",
            "--json",
            "What is the corporate card PIN?",
        ],
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout.splitlines()[0])["hits"]
    assert [(h["source"], h["score"]) for h in hits] == [("card.md", 1.0)]
