"""Token-aware chunking with overlap, and stable chunk ids derived from content.

Chunks are measured in the embedding model's own tokens so that none is truncated by the model.
A chunk id is a hash of (document id, chunk text, occurrence), so an unchanged document yields the
same ids on every run and only changed text is re-embedded and re-indexed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandera.pandas as pa
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pandera.typing import Series

if TYPE_CHECKING:
    from agent_platform.knowledge.embedder import Embedder

CHUNK_ID_PATTERN = r"^[0-9a-f]{32}$"
CHUNKER_VERSION = "1"  # bump when the splitting rules change


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    position: int
    n_tokens: int
    text: str


def make_chunk_id(document_id: str, text: str, occurrence: int) -> str:
    payload = f"{document_id}\x00{occurrence}\x00{text}".encode()
    return hashlib.sha256(payload).hexdigest()[:32]


class TokenChunker:
    """Splits text on paragraph, line, then word boundaries into chunks of at most N tokens."""

    def __init__(self, tokenizer: Any, chunk_tokens: int, overlap_tokens: int) -> None:
        if overlap_tokens >= chunk_tokens:
            raise ValueError(
                f"overlap ({overlap_tokens} tokens) must be smaller than the chunk size "
                f"({chunk_tokens} tokens)"
            )
        self._tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self._splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            tokenizer,
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            separators=["\n\n", "\n", ". ", " ", ""],
            keep_separator="end",
            strip_whitespace=True,
        )

    def chunk_key(self, text: str) -> str:
        """What a document's chunks depend on: its extracted text and the chunking settings.

        Chunks are reused while this is unchanged, so a new parser that extracts different text,
        or a new chunk size, re-chunks the documents it affects even if their files did not change.
        """
        tokenizer = getattr(self._tokenizer, "name_or_path", type(self._tokenizer).__name__)
        settings = f"{CHUNKER_VERSION}:{tokenizer}:{self.chunk_tokens}:{self.overlap_tokens}"
        return hashlib.sha256(f"{settings}\x00{text}".encode()).hexdigest()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def split(self, document_id: str, text: str) -> list[Chunk]:
        text = text.strip()
        whole = self.count_tokens(text)
        if 0 < whole <= self.chunk_tokens:  # a short document is one chunk: skip the splitter
            return [Chunk(make_chunk_id(document_id, text, 0), 0, whole, text)]
        seen: Counter[str] = Counter()
        chunks: list[Chunk] = []
        for piece in self._splitter.split_text(text):
            piece = piece.strip()
            if not piece:
                continue
            occurrence = seen[piece]
            seen[piece] += 1
            chunks.append(
                Chunk(
                    chunk_id=make_chunk_id(document_id, piece, occurrence),
                    position=len(chunks),
                    n_tokens=self.count_tokens(piece),
                    text=piece,
                )
            )
        return chunks


def chunker_for(embedder: Embedder, chunk_tokens: int, overlap_tokens: int) -> TokenChunker:
    """A chunker whose chunks fit the embedder's sequence length (less its two special tokens)."""
    limit = min(chunk_tokens, max_chunk_tokens(embedder))
    return TokenChunker(embedder.tokenizer, limit, min(overlap_tokens, limit - 1))


def max_chunk_tokens(embedder: Embedder) -> int:
    return embedder.max_seq_length - 2


class ChunkTableSchema(pa.DataFrameModel):
    """The contract of the `document_chunks` table, checked on every materialization."""

    chunk_id: Series[str] = pa.Field(unique=True, str_matches=CHUNK_ID_PATTERN)
    document_id: Series[str] = pa.Field(str_length={"min_value": 1})
    document_hash: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$")
    chunk_key: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$")
    position: Series[int] = pa.Field(ge=0)
    n_tokens: Series[int] = pa.Field(ge=1)
    text: Series[str] = pa.Field(str_length={"min_value": 1})
    pii_types: Series[str] = pa.Field(nullable=True, str_matches=r"^[A-Z_,]*$")

    class Config:
        strict = True
        coerce = True
