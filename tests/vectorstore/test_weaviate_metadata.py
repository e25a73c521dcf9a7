"""Which metadata entries Weaviate gets as filterable `m_<key>` properties (runs without a server;
the round trip itself is in the contract suite, run with WEAVIATE_URL)."""

from __future__ import annotations

from agent_platform.vectorstore.weaviate_schema import metadata_properties


def test_only_top_level_scalars_under_identifier_keys_become_properties() -> None:
    metadata = {
        "source": "manual.pdf",
        "page": 3,
        "ratio": 0.5,
        "public": False,
        "loc": {"lines": {"from": 1, "to": 9}},
        "languages": ["en"],
        "pdf.version": "1.7",
        "Content-Type": "application/pdf",
        "layout": None,
    }
    assert metadata_properties(metadata) == {
        "m_source": "manual.pdf",
        "m_page": 3,
        "m_ratio": 0.5,
        "m_public": False,
    }
