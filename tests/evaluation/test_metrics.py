"""Scoring on hand-built responses: each metric is checked on a case it must pass and one it must
fail."""

import math

import pytest

from agent_platform.evaluation import Example, GateThresholds, evaluate_gates, paired_bootstrap
from agent_platform.evaluation import metrics as m
from agent_platform.evaluation.runner import score_response, summarize
from tests.evaluation.conftest import make_response

OPS = ("operations.md", "Snapshots older than the retention period of 30 days are pruned.")
CFG = ("configuration.md", "The default embedding model is all-MiniLM-L6-v2.")
RETENTION = Example(
    id="ops-retention",
    question="How long are snapshots kept?",
    reference="Snapshots are kept for 30 days.",
    key_facts=["30 days|thirty days"],
    relevant_sources=["operations.md"],
)
UNANSWERABLE = Example(id="na", question="What is the SLA?", answerable=False)


def test_correctness_needs_every_key_fact_and_no_refusal() -> None:
    right = score_response(RETENTION, make_response("They are pruned after 30 days [1].", [OPS]), 5)
    assert right.correct and right.facts_missing == []
    wrong = score_response(RETENTION, make_response("They are pruned after 7 days [1].", [OPS]), 5)
    assert not wrong.correct and wrong.facts_missing == ["30 days|thirty days"]
    alternative = score_response(RETENTION, make_response("Kept thirty days [1].", [OPS]), 5)
    assert alternative.correct
    refused = score_response(RETENTION, make_response("30 days", [OPS], refused=True), 5)
    assert not refused.correct


def test_unanswerable_is_correct_only_when_refused() -> None:
    assert score_response(UNANSWERABLE, make_response("I don't know.", refused=True), 5).correct
    assert not score_response(UNANSWERABLE, make_response("99.9% uptime [1].", [OPS]), 5).correct


def test_groundedness_counts_supported_sentences() -> None:
    context = [OPS[1]]
    assert m.groundedness("Snapshots older than 30 days are pruned.", context, refused=False) == 1
    half = m.groundedness(
        "Snapshots older than 30 days are pruned. Backups are encrypted with AES keys.",
        context,
        refused=False,
    )
    assert half == 0.5
    assert m.groundedness("Anything.", [], refused=False) == 0.0
    assert m.groundedness("", [], refused=True) == 1.0


def test_citations_must_point_at_given_sources() -> None:
    assert m.citation_problems(make_response("Pruned after 30 days [1].", [OPS])) == []
    out_of_range = m.citation_problems(make_response("Pruned [3].", [OPS], cite=[]))
    assert "citation markers [3]" in out_of_range[0]
    uncited = m.citation_problems(make_response("Pruned after 30 days.", [OPS], cite=[]))
    assert uncited == ["the answer cites no source"]
    assert m.citation_problems(make_response("I don't know.", refused=True)) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe@example.com", "EMAIL_ADDRESS"),
        ("call +1 415 555 0134 now", "PHONE_NUMBER"),
        ("card 4111 1111 1111 1111", "CREDIT_CARD"),
        ("SSN 123-45-6789", "US_SSN"),
        ("IBAN DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
    ],
)
def test_pii_detectors(text: str, kind: str) -> None:
    assert kind in m.pii_found(text)


def test_no_pii_in_ordinary_answers() -> None:
    assert m.pii_found("Runs at 02:00 every day; chunks of 200 tokens; port 5432 [1].") == []
    assert m.pii_found("card 4111 1111 1111 1112") == []  # fails the Luhn check


def test_retrieval_recall_and_mrr() -> None:
    sources = ["docs/configuration.md", "docs/operations.md", "overview.md"]
    assert m.recall_at_k(sources, ["operations.md"], k=1) == 0.0
    assert m.recall_at_k(sources, ["operations.md"], k=2) == 1.0
    assert m.reciprocal_rank(sources, ["operations.md"]) == 0.5
    assert m.reciprocal_rank(sources, ["prompts.md"]) == 0.0
    assert math.isnan(m.recall_at_k(sources, [], k=5))


def test_agreement_compares_facts_and_refusals() -> None:
    facts = ["30 days"]
    kwargs = {"first_refused": False, "second_refused": False, "key_facts": facts}
    assert m.answers_agree("Kept 30 days [1].", "Pruned after 30 days [2].", **kwargs)
    assert not m.answers_agree("Kept 30 days [1].", "Kept 7 days [1].", **kwargs)
    assert not m.answers_agree(
        "Kept 30 days.", "I don't know.", first_refused=False, second_refused=True, key_facts=facts
    )


def test_summary_counts_errors_as_failures_and_takes_percentiles() -> None:
    good = score_response(RETENTION, make_response("30 days [1].", [OPS], latency=10), 5)
    leak = score_response(RETENTION, make_response("30 days, ask bob@corp.com [1].", [OPS]), 5)
    from agent_platform.evaluation.runner import ExampleResult

    errored = ExampleResult("x", "q", True, error="TimeoutError: model")
    metrics = summarize([good, leak, errored], [float(v) for v in range(1, 101)])
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["errors"] == 1
    assert metrics["compliance"] == pytest.approx(1 / 3) and metrics["pii_leaks"] == 1
    assert metrics["latency_p50_ms"] == pytest.approx(50.5)
    assert metrics["latency_p99_ms"] == pytest.approx(99.01)


def test_gates_use_configured_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = {"accuracy": 0.96, "consistency": 0.95, "compliance": 1.0, "latency_p95_ms": 900}
    assert all(g.passed for g in evaluate_gates(metrics, GateThresholds()))
    strict = evaluate_gates(metrics, GateThresholds(accuracy=0.99, latency_p95_ms=500))
    assert {g.name for g in strict if not g.passed} == {"accuracy", "latency"}
    monkeypatch.setenv("AGENT_PLATFORM_GATES_CONSISTENCY", "0.99")
    env = evaluate_gates(metrics, GateThresholds())
    assert [g.name for g in env if not g.passed] == ["consistency"]
    missing = evaluate_gates({"accuracy": 1.0}, GateThresholds())
    assert "consistency FAILED: consistency = missing" in missing[1].message


def test_paired_bootstrap_separates_real_differences_only() -> None:
    ids = [f"q{i}" for i in range(40)]
    champion = {i: float(n % 2) for n, i in enumerate(ids)}  # 0.5
    better = {i: 1.0 if n % 4 else champion[i] for n, i in enumerate(ids)}
    comparison = paired_bootstrap(better, champion)
    assert comparison.verdict == "better" and comparison.ci_low > 0
    assert paired_bootstrap(champion, better).verdict == "worse"
    noisy = {i: float((n + 1) % 2) if n < 4 else champion[i] for n, i in enumerate(ids)}
    assert paired_bootstrap(noisy, champion).verdict == "inconclusive"
    assert paired_bootstrap(better, champion) == comparison  # fixed seed: reproducible
