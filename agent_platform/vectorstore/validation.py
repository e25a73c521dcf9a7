"""Input checks and score conventions shared by every backend.

Both backends must reject the same bad input with the same clear message and map raw scores to
the same [0, 1] scales, otherwise switching backends would change behaviour, not just storage.

Score scales (higher is better in every mode):
- vector: `(1 + cosine) / 2`, so 0.5 means orthogonal and 1.0 identical. Chosen over clipping
  at 0 because it keeps the full ordering (no ties among dissimilar hits).
- keyword: the share of the query's content words the chunk contains (see `keyword_scale.py`),
  so a chunk holding every word asked scores 1.0 in any tenant, however small.
- hybrid: RRF normalised by its maximum (see `fusion.py`): 1.0 = first in both rankings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from agent_platform.vectorstore.base import ChunkRecord, MetadataValue

TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FILTER_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
METADATA_KEY_MAX = 256
METADATA_MAX_DEPTH = 32


def check_tenant(tenant: str) -> str:
    """Tenant names become directory names and Weaviate tenant names: keep them to a safe set."""
    if not isinstance(tenant, str) or not TENANT_RE.match(tenant):
        raise ValueError(
            f"tenant {tenant!r} is invalid: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return tenant


def check_vector(vector: object, dim: int | None, what: str) -> np.ndarray:
    """A finite, non-zero 1-D float32 vector of the right dimension, normalised to unit length."""
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: vector is not numeric ({exc})") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what}: vector must be 1-D and non-empty, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(
            f"{what}: vector has dimension {arr.shape[0]}, but this index stores {dim}-d vectors"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: vector contains NaN or infinite values")
    norm = float(np.linalg.norm(arr))
    if norm == 0.0:
        raise ValueError(f"{what}: vector is all zeros (cosine similarity is undefined)")
    return (arr / norm).astype(np.float32)


def check_record(record: ChunkRecord, dim: int | None) -> np.ndarray:
    """Validate one record; returns its normalised vector."""
    if not isinstance(record, ChunkRecord):
        raise TypeError(f"expected ChunkRecord, got {type(record).__name__}")
    what = f"chunk {record.chunk_id!r}"
    for name in ("chunk_id", "document_id", "source"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{what}: {name} must be a non-empty string, got {value!r}")
    if not isinstance(record.text, str):
        raise ValueError(f"{what}: text must be a string, got {type(record.text).__name__}")
    check_metadata(what, record.metadata)
    return check_vector(record.vector, dim, what)


def check_metadata(what: str, metadata: object) -> dict[str, MetadataValue]:
    """JSON metadata: string keys, values of JSON types (nested lists and objects included).

    Stored and returned exactly (tuples come back as lists), so documents from LangChain loaders
    round-trip. Only top-level scalar values under identifier keys can be filtered on.
    """
    if not isinstance(metadata, Mapping):
        raise ValueError(f"{what}: metadata must be a mapping, got {type(metadata).__name__}")
    return {
        _check_key(what, "metadata", key): _check_json(what, f"metadata[{key!r}]", value, 1)
        for key, value in metadata.items()
    }


def _check_key(what: str, where: str, key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > METADATA_KEY_MAX:
        raise ValueError(
            f"{what}: {where} key {key!r} must be a non-empty string of at most "
            f"{METADATA_KEY_MAX} characters"
        )
    return key


def _check_json(what: str, where: str, value: object, depth: int) -> MetadataValue:
    """`value` as plain JSON data, or a ValueError naming where it is not."""
    if depth > METADATA_MAX_DEPTH:
        raise ValueError(f"{what}: {where} is nested deeper than {METADATA_MAX_DEPTH} levels")
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what}: {where} is not finite")
        return value
    if isinstance(value, list | tuple):
        return [_check_json(what, f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {
            _check_key(what, where, k): _check_json(what, f"{where}[{k!r}]", v, depth + 1)
            for k, v in value.items()
        }
    raise ValueError(
        f"{what}: {where} must be JSON data (str, int, float, bool, None, list or dict), "
        f"got {type(value).__name__}"
    )


def filterable(key: str, value: object) -> bool:
    """Whether a metadata entry can be filtered on: an identifier key with a scalar value."""
    return bool(FILTER_KEY_RE.match(key)) and isinstance(value, str | int | float | bool)


def check_search_args(
    query_text: str, query_vector: object, k: int, mode: str, min_score: float | None
) -> None:
    """Reject nonsense queries up front, naming the argument."""
    from agent_platform.vectorstore.base import SearchMode

    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    try:
        mode = SearchMode(mode)
    except ValueError as exc:
        raise ValueError(f"mode {mode!r} is not one of vector, keyword, hybrid") from exc
    if mode in (SearchMode.KEYWORD, SearchMode.HYBRID) and not (query_text or "").strip():
        raise ValueError(f"query_text is empty: {mode.value} search needs words to match")
    if mode in (SearchMode.VECTOR, SearchMode.HYBRID) and query_vector is None:
        raise ValueError(f"query_vector is required for {mode.value} search")
    if mode is SearchMode.VECTOR and query_vector is None and not (query_text or "").strip():
        raise ValueError("query is empty: give query_text or query_vector")
    if min_score is not None and not (0.0 <= float(min_score) <= 1.0):
        raise ValueError(f"min_score must be in [0, 1], got {min_score!r}")


def check_filters(filters: Mapping[str, MetadataValue] | None) -> dict[str, MetadataValue]:
    """Equality filters on the record fields `source` and `document_id` or on a metadata key
    holding a scalar (nested values and keys that are not identifiers are stored, not filtered)."""
    if not filters:
        return {}
    out: dict[str, MetadataValue] = {}
    for key, value in filters.items():
        if not isinstance(key, str) or not FILTER_KEY_RE.match(key):
            raise ValueError(
                f"filter key {key!r} cannot be filtered on: filter keys must match "
                f"{FILTER_KEY_RE.pattern}"
            )
        if not isinstance(value, str | int | float | bool):
            raise ValueError(
                f"filter {key!r}: value must be str, int, float or bool, got {type(value).__name__}"
            )
        out[key] = value
    return out


def vector_score(cosine: float) -> float:
    return float(min(1.0, max(0.0, (1.0 + cosine) / 2.0)))
