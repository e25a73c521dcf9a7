"""Token-aware chunking: limits, overlap, stable ids and the chunk table schema."""

import itertools

import pandas as pd
import pandera.errors
import pytest

from agent_platform.knowledge.chunking import ChunkTableSchema, TokenChunker, make_chunk_id

PARAGRAPH = (
    "Dagster materializes software-defined assets. Each asset is a data product with lineage. "
    "Sensors react to changes and schedules keep assets fresh. "
)


@pytest.fixture(scope="module")
def chunker(embedder) -> TokenChunker:
    return TokenChunker(embedder.tokenizer, chunk_tokens=64, overlap_tokens=16)


def test_chunks_respect_the_token_limit_and_overlap(chunker: TokenChunker) -> None:
    text = "\n\n".join(PARAGRAPH * 2 for _ in range(6))
    chunks = chunker.split("doc.md", text)
    assert len(chunks) > 3
    assert all(1 <= c.n_tokens <= 64 for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    # Overlap: consecutive chunks share some words.
    shared = [set(a.text.split()) & set(b.text.split()) for a, b in itertools.pairwise(chunks)]
    assert any(shared)


def test_chunk_ids_are_stable_and_depend_on_document_and_text(chunker: TokenChunker) -> None:
    text = PARAGRAPH * 8
    first = [c.chunk_id for c in chunker.split("a.md", text)]
    assert first == [c.chunk_id for c in chunker.split("a.md", text)]
    assert set(first).isdisjoint(c.chunk_id for c in chunker.split("b.md", text))
    assert make_chunk_id("a.md", "same", 0) != make_chunk_id("a.md", "same", 1)


def test_overlap_must_be_smaller_than_chunk(embedder) -> None:
    with pytest.raises(ValueError, match="overlap"):
        TokenChunker(embedder.tokenizer, chunk_tokens=32, overlap_tokens=32)


def test_schema_rejects_bad_rows() -> None:
    frame = pd.DataFrame(
        {
            "chunk_id": ["0" * 32, "0" * 32, "not-hex"],
            "document_id": ["a.md", "", "b.md"],
            "document_hash": ["a" * 64] * 3,
            "chunk_key": ["b" * 64] * 3,
            "position": [0, 1, -1],
            "n_tokens": [5, 0, 3],
            "text": ["ok", "", "text"],
        }
    )
    with pytest.raises(pandera.errors.SchemaErrors) as info:
        ChunkTableSchema.validate(frame, lazy=True)
    failing_columns = set(info.value.failure_cases["column"])
    assert {"chunk_id", "document_id", "position", "n_tokens", "text"} <= failing_columns


def test_documents_are_rechunked_when_text_or_settings_change(embedder, tmp_path) -> None:
    from agent_platform.knowledge.pipeline import chunk_documents, load_documents
    from agent_platform.knowledge.tables import TenantTables

    source = tmp_path / "docs"
    source.mkdir()
    (source / "a.md").write_text(PARAGRAPH * 6)
    (source / "b.md").write_text(PARAGRAPH * 3)
    tables = TenantTables(tmp_path / "knowledge", "t")
    load_documents(source, tables, max_bytes=10**6)
    small = TokenChunker(embedder.tokenizer, chunk_tokens=64, overlap_tokens=16)
    assert chunk_documents(tables, small).documents_chunked == 2
    again = chunk_documents(tables, small)
    assert (again.documents_chunked, again.documents_reused) == (0, 2)
    # Same files, other chunk size: every document is chunked anew, none reused.
    large = TokenChunker(embedder.tokenizer, chunk_tokens=128, overlap_tokens=16)
    resized = chunk_documents(tables, large)
    assert (resized.documents_chunked, resized.documents_reused) == (2, 0)
    assert resized.chunks_total < again.chunks_total


def test_a_short_document_is_one_chunk_with_its_token_count(chunker: TokenChunker) -> None:
    text = "  Snapshots are pruned after thirty days.\n"
    (chunk,) = chunker.split("short.md", text)
    assert chunk.text == text.strip()
    assert chunk.n_tokens == chunker.count_tokens(text.strip())
    assert chunk.chunk_id == make_chunk_id("short.md", text.strip(), 0)
    assert chunker.split("empty.md", "   ") == []
