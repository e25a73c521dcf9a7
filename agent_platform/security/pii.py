"""PII detection and masking: the one detector behind answers, logs, traces, memory, ingest and
the evaluation's compliance gate.

Presidio's pattern recognizers (email, phone, credit card with its checksum, IBAN with its
checksum and country format (`pii_iban`: any case and grouping), US SSN/ITIN/passport/driver's
licence/bank number, UK NHS number, IP and MAC addresses,
crypto wallets, medical licences) always run. spaCy NER adds PERSON and LOCATION only when a spaCy
pipeline with an entity recognizer is installed (`PiiSettings.spacy_model`); none is installed by
default, so a blank English pipeline (a tokenizer only) feeds the pattern recognizers. Nothing is
fetched at run time: the email recognizer's `tldextract` reads its bundled public-suffix snapshot.

Masking replaces each span with `<ENTITY_TYPE>` (presidio-anonymizer's `replace` operator), so the
reader still sees what kind of value was there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Presidio logs each recognizer it skips (other languages) at WARNING; keep logs quiet.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
logging.getLogger("presidio-anonymizer").setLevel(logging.WARNING)

PATTERN_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "CRYPTO",
    "MEDICAL_LICENSE",
)
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
DEFAULT_SCORE_THRESHOLD = 0.4

# Cheap pre-checks: an entity's recognizer only runs when its gate matches (each gate accepts a
# superset of what the recognizer can find). The phone recognizer alone costs ~10 ms a call.
_DIGIT = re.compile(r"\d")
_CITATION = re.compile(r"\[\d{1,4}\]")
_GATES: dict[str, re.Pattern[str]] = {
    "EMAIL_ADDRESS": re.compile("@"),
    "PHONE_NUMBER": re.compile(r"\d(?:[\s().+/-]{0,3}\d){6,}"),
    "CREDIT_CARD": re.compile(r"\d(?:[\s-]{0,2}\d){11,}"),
    "IBAN_CODE": re.compile(r"[A-Za-z]{2}\d{2}[ -]?[A-Za-z0-9]{4}"),
    "US_PASSPORT": re.compile(r"\d{9}|[A-Za-z]\d{8}"),
    "US_BANK_NUMBER": re.compile(r"\d{8,17}"),
    "US_DRIVER_LICENSE": re.compile(r"\d{3,}"),
    "UK_NHS": re.compile(r"\d{3}[- ]?\d{3}[- ]?\d{4}"),
    "CRYPTO": re.compile(r"\b(?:[13][a-km-zA-HJ-NP-Z1-9]{25,}|bc1[a-z0-9]{20,})"),
    "MEDICAL_LICENSE": re.compile(r"[A-Za-z]{2}\d{7}"),
    "US_SSN": re.compile(r"\d{3}[- .]?\d{2}[- .]?\d{4}|\d{5}-\d{4}|\d{3}-\d{6}"),
    "US_ITIN": re.compile(r"9\d{2}[- ]?\d{2}[- ]?\d{4}"),
    "IP_ADDRESS": re.compile(
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:"
    ),
    "MAC_ADDRESS": re.compile(r"[0-9A-Fa-f]{2}[:.-][0-9A-Fa-f]{2}[:.-]"),
}


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """One detected value: its entity type, character span and the recognizer's confidence."""

    entity_type: str
    start: int
    end: int
    score: float


def _no_fetch_email_recognizer() -> Any:
    """Presidio's email recognizer, validating domains against tldextract's bundled snapshot
    (the stock one calls `tldextract.extract`, which downloads the public suffix list)."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    return OfflineEmailRecognizer()


def _ssn_recognizer() -> Any:
    """Presidio's US SSN recognizer without its list of published sample numbers: a sample SSN
    in a customer document is masked all the same (over-masking costs nothing)."""
    from collections import Counter

    from presidio_analyzer.predefined_recognizers import UsSsnRecognizer

    class StructuralSsnRecognizer(UsSsnRecognizer):
        def invalidate_result(self, pattern_text: str) -> bool:
            if len(Counter(c for c in pattern_text if c in ".- ")) > 1:
                return True  # mixed delimiters
            digits = "".join(c for c in pattern_text if c.isdigit())
            return (
                len(set(digits)) == 1
                or digits[3:5] == "00"
                or digits[5:] == "0000"
                or digits[:3] in ("000", "666")
            )

    return StructuralSsnRecognizer()


def _nlp_engine(spacy_model: str | None) -> tuple[Any, bool]:
    """(engine, has_ner): the named spaCy pipeline when it is installed, else a blank English one
    whose lemmas are the lower-cased tokens (so Presidio's context words still raise scores)."""
    import spacy
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine

    if spacy_model and spacy.util.is_package(spacy_model):
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": spacy_model}])
        engine.load()
        nlp: dict[str, Any] = engine.nlp  # type: ignore[assignment]  # set by load()
        return engine, "ner" in nlp["en"].pipe_names

    class BlankSpacyNlpEngine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}  # type: ignore[assignment]  # None until load()

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
            return NlpArtifacts(
                entities=[],
                tokens=doc,
                tokens_indices=[t.idx for t in doc],
                lemmas=[t.lower_ for t in doc],
                nlp_engine=self,
                language=language,
                scores=[],
            )

    engine = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    return engine, False


class PiiDetector:
    """Finds and masks personal data in text (thread-safe after construction)."""

    def __init__(
        self,
        *,
        spacy_model: str | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        entities: Iterable[str] | None = None,
    ) -> None:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.predefined_recognizers import (
            EmailRecognizer,
            IbanRecognizer,
            UsSsnRecognizer,
        )
        from presidio_anonymizer import AnonymizerEngine

        from agent_platform.security.pii_iban import IbanCodeRecognizer

        engine, has_ner = _nlp_engine(spacy_model)
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(nlp_engine=engine, languages=["en"])
        replaced = EmailRecognizer | UsSsnRecognizer | IbanRecognizer
        registry.recognizers = [r for r in registry.recognizers if not isinstance(r, replaced)]
        registry.add_recognizer(_no_fetch_email_recognizer())
        registry.add_recognizer(_ssn_recognizer())
        registry.add_recognizer(IbanCodeRecognizer())  # see pii_iban: finds what the stock misses
        wanted = tuple(entities) if entities is not None else PATTERN_ENTITIES + NER_ENTITIES
        self.ner = has_ner
        self.spacy_model = spacy_model if has_ner else None
        self.entities = tuple(e for e in wanted if has_ner or e not in NER_ENTITIES)
        self.score_threshold = score_threshold
        self._analyzer = AnalyzerEngine(
            nlp_engine=engine, registry=registry, supported_languages=["en"]
        )
        self._anonymizer = AnonymizerEngine()

    def _candidates(self, text: str) -> list[str]:
        """Entities worth asking Presidio about for `text` (see `_GATES`)."""
        if self.ner:
            return list(self.entities)
        has_digit = _DIGIT.search(text) is not None
        found = []
        for entity in self.entities:
            gate = _GATES.get(entity)
            if (gate.search(text) is not None) if gate is not None else has_digit:
                found.append(entity)
        return found

    def _analyze(self, text: str) -> list[Any]:
        if not text:
            return []
        entities = self._candidates(text)
        if not entities:
            return []
        # Citation markers blanked out (same length, so spans stay valid): the phone matcher
        # rejects a number followed by "[2]", which is how every grounded answer cites.
        scanned = _CITATION.sub(lambda m: " " * len(m.group()), text)
        results = self._analyzer.analyze(
            scanned, language="en", entities=entities, score_threshold=self.score_threshold
        )
        return _without_overlaps(results)

    def detect(self, text: str) -> list[PiiSpan]:
        """Non-overlapping spans of personal data in `text`, in order (the best-scored span wins
        where two overlap)."""
        return [PiiSpan(r.entity_type, r.start, r.end, r.score) for r in self._analyze(text)]

    def types(self, text: str) -> list[str]:
        """The entity types found in `text`, sorted and unique."""
        return sorted({r.entity_type for r in self._analyze(text)})

    def mask(self, text: str) -> str:
        """`text` with each span of personal data replaced by `<ENTITY_TYPE>`."""
        return self.redact(text)[0]

    def redact(self, text: str) -> tuple[str, list[PiiSpan]]:
        """(`mask(text)`, `detect(text)`) with one analysis."""
        results = self._analyze(text)
        if not results:
            return text, []
        spans = [PiiSpan(r.entity_type, r.start, r.end, r.score) for r in results]
        return self._anonymizer.anonymize(text=text, analyzer_results=results).text, spans

    def mask_value(self, value: Any) -> Any:
        """`mask` applied to every string inside dicts, lists and tuples (log records)."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.mask_value(v) for v in value)
        return value


def _without_overlaps(results: list[Any]) -> list[Any]:
    """Keep the highest-scored (then longest) of overlapping results, in text order."""
    ranked = sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start))
    kept: list[Any] = []
    for r in ranked:
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


@lru_cache(maxsize=4)
def pii_detector(spacy_model: str | None = None) -> PiiDetector:
    """The process-wide detector for `spacy_model` (built once: loading takes ~0.5 s)."""
    return PiiDetector(spacy_model=spacy_model)


@lru_cache(maxsize=1)
def configured_detector() -> PiiDetector:
    """The detector of the runtime settings (`[runtime.protection] spacy_model`), for the code
    that has no settings at hand: log formatting and the evaluation's compliance gate."""
    from agent_platform.runtime.config import RuntimeSettings

    return pii_detector(RuntimeSettings().protection.spacy_model)
