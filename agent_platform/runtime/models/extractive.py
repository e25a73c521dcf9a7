"""A deterministic answerer that quotes the retrieved context instead of generating.

It is the platform's always-available model: no weights, no network, microseconds per call, and it
never says anything the sources do not say. Given numbered sources (`[n] (source: …) text` lines
or the registered prompt's `<source id="n">` blocks, see `agent_platform.runtime.sources`), it
ranks the sources' sentences against the question with BM25, keeps those covering enough of the
question's terms, and answers with them, each followed by its citation `[n]`. With no sentence
good enough it says it does not know. Sentences that give orders to the model or the reader
(`agent_platform.security.injection`) are never quoted.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from agent_platform.runtime.sources import parse_sources, strip_sources
from agent_platform.runtime.tokens import count_message_tokens, count_tokens, message_text
from agent_platform.security.injection import is_instruction

NO_ANSWER = "I don't know based on the provided context."

_WORD = re.compile(r"[a-z0-9]+")
_HEADING = re.compile(r"^#{1,6}\s")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_QUESTION_MARKER = re.compile(r"^Question:[ \t]*", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_STOPWORD_TEXT = (
    "a an and are as at be been being but by can could did do does doing for from had has have "
    "having he her here hers him his how i if in into is it its itself me my no nor not of on "
    "or our ours she should so some such than that the their theirs them then there these they "
    "this those to too under until up very was we were what when where which while who whom why "
    "will with would you your yours about above after again against all am any because before "
    "below between both during each few further more most once only other over own same just "
    "don now tell please "
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    """A light suffix stripper: enough to match 'refunds' with 'refund', 'shipping' with 'ship'."""
    for suffix in ("ingly", "ing", "edly", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


@dataclass(frozen=True)
class _Sentence:
    number: int
    position: int
    text: str
    terms: Counter[str]


class ExtractiveAnswerer(BaseChatModel):
    """Quotes the best-supported sentences of the provided sources, citing them as `[n]`."""

    runs_inline: ClassVar[bool] = True  # pure computation, no I/O: the router calls it in-thread
    max_sentences: int = Field(default=2, ge=1, le=10)
    min_coverage: float = Field(
        default=0.5, gt=0, le=1, description="Share of question terms a sentence must contain."
    )
    relative_cutoff: float = Field(
        default=0.5, ge=0, le=1, description="Keep sentences scoring at least this x the best."
    )
    k1: float = 1.2
    b: float = 0.75
    model_name: str = "extractive"

    @property
    def _llm_type(self) -> str:
        return "extractive-answerer"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "max_sentences": self.max_sentences,
            "min_coverage": self.min_coverage,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if not messages:
            raise ValueError("messages: at least one message is required")
        answer = self.answer(messages)
        message = AIMessage(
            content=answer,
            usage_metadata={
                "input_tokens": count_message_tokens(messages),
                "output_tokens": count_tokens(answer),
                "total_tokens": count_message_tokens(messages) + count_tokens(answer),
            },
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def answer(self, messages: list[BaseMessage]) -> str:
        """The answer text for a conversation (the last human message is the question)."""
        question = _question(messages)
        sources = [s for m in messages for s in parse_sources(message_text(m))]
        sentences = [
            _Sentence(src.number, i, text, Counter(_terms(text)))
            for src in sources
            for i, text in enumerate(_split_sentences(src.text))
            if not is_instruction(text)  # sources are data: never quote an order as the answer
        ]
        q_terms = set(_terms(question))
        if not q_terms or not sentences:
            return NO_ANSWER
        scored = [
            (self._bm25(q_terms, s, sentences), s)
            for s in sentences
            if len(q_terms & s.terms.keys()) / len(q_terms) >= self.min_coverage
        ]
        scored = [(score, s) for score, s in scored if score > 0]
        if not scored:
            return NO_ANSWER
        best = max(score for score, _ in scored)
        ranked = sorted(
            (item for item in scored if item[0] >= self.relative_cutoff * best),
            key=lambda item: (-item[0], item[1].number, item[1].position),
        )
        kept, seen = [], set()
        for item in ranked:  # overlapping chunks repeat sentences: quote each once
            key = " ".join(item[1].text.lower().split())
            if key not in seen:
                seen.add(key)
                kept.append(item)
            if len(kept) == self.max_sentences:
                break
        kept.sort(key=lambda item: (item[1].number, item[1].position))
        return " ".join(f"{s.text} [{s.number}]" for _, s in kept)

    def _bm25(self, q_terms: set[str], sentence: _Sentence, corpus: list[_Sentence]) -> float:
        n = len(corpus)
        avg_len = sum(sum(s.terms.values()) for s in corpus) / n or 1.0
        length = sum(sentence.terms.values())
        score = 0.0
        for term in q_terms:
            tf = sentence.terms.get(term, 0)
            if not tf:
                continue
            df = sum(1 for s in corpus if term in s.terms)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += (
                idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * length / avg_len))
            )
        return score


def _question(messages: list[BaseMessage]) -> str:
    """The last human message; when it follows the `grounded_qa_user` layout (earlier turns, then
    a `Question:` line), only the text after the last `Question:` marker."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return _after_marker(strip_sources(message_text(message)))
    return _after_marker(strip_sources(message_text(messages[-1])))


def _after_marker(text: str) -> str:
    found = list(_QUESTION_MARKER.finditer(text))
    return text[found[-1].end() :].strip() if found else text


def _split_sentences(text: str) -> list[str]:
    """Sentences of `text`. Hard-wrapped lines are joined back into their paragraph first (a
    sentence may span lines); headings, list items and blank lines start a new segment, and
    Markdown headings are not sentences."""
    segments: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _HEADING.match(line):
            segments.append([])
            continue
        if _LIST_ITEM.match(line):
            segments.append([])
            line = _LIST_ITEM.sub("", line, count=1)
        segments[-1].append(line)
    sentences: list[str] = []
    for segment in segments:
        paragraph = " ".join(segment)
        sentences.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip())
    return sentences
