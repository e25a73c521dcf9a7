"""Evaluation datasets: JSON Lines of questions with reference answers and relevant sources.

A dataset is versioned by the SHA-256 of its bytes, so an evaluation names exactly what it was
scored against. Rows are validated with a pandera schema; a malformed dataset is reported with
the offending rows (line number and id) instead of failing on the first bad field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pydantic import BaseModel, ConfigDict, Field

COLUMNS = (
    "id",
    "question",
    "reference",
    "key_facts",
    "relevant_sources",
    "answerable",
    "paraphrases",
)


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and the offending rows."""


class Example(BaseModel):
    """One evaluation question. `key_facts` alternatives are separated by `|`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    question: str
    reference: str = ""
    key_facts: list[str] = Field(default_factory=list)
    relevant_sources: list[str] = Field(default_factory=list)
    answerable: bool = True
    paraphrases: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class RowProblem:
    line: int
    example_id: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line} (id {self.example_id!r}): {self.message}"


@dataclass
class EvaluationDataset:
    """The examples of one dataset file, its version, and any problems found in it."""

    name: str
    path: Path
    version: str
    examples: list[Example]
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def require_valid(self) -> EvaluationDataset:
        if self.problems:
            listed = "; ".join(str(p) for p in self.problems[:10])
            more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
            raise DatasetError(f"{self.path}: {len(self.problems)} invalid row(s): {listed}{more}")
        return self

    def subset(self, max_examples: int | None) -> list[Example]:
        """The first `max_examples`, keeping answerable and unanswerable ones in proportion."""
        if max_examples is None or max_examples >= len(self.examples):
            return list(self.examples)
        answerable = [e for e in self.examples if e.answerable]
        other = [e for e in self.examples if not e.answerable]
        n_other = max(1, round(max_examples * len(other) / len(self.examples))) if other else 0
        return answerable[: max_examples - n_other] + other[:n_other]


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _schema() -> pa.DataFrameSchema:
    """Every column is checked element by element, so a failure names its row."""
    text = pa.Check(_is_text, element_wise=True, name="a non-empty string")
    str_list = pa.Check(_is_str_list, element_wise=True, name="a list of non-empty strings")
    boolean = pa.Check(lambda v: isinstance(v, bool), element_wise=True, name="true or false")
    string = pa.Check(lambda v: isinstance(v, str), element_wise=True, name="a string")
    return pa.DataFrameSchema(
        {
            "id": pa.Column(None, [text], unique=True),
            "question": pa.Column(None, [text]),
            "reference": pa.Column(None, [string]),
            "key_facts": pa.Column(None, [str_list]),
            "relevant_sources": pa.Column(None, [str_list]),
            "answerable": pa.Column(None, [boolean]),
            "paraphrases": pa.Column(None, [str_list]),
        },
        checks=[
            pa.Check(
                lambda df: (
                    df["answerable"].map(lambda v: v is not True)
                    | (
                        df["key_facts"].map(bool)
                        & df["relevant_sources"].map(bool)
                        & df["reference"].map(_is_text)
                    )
                ),
                name="answerable rows need a reference, key_facts and relevant_sources",
            ),
            pa.Check(
                lambda df: (
                    df["answerable"].map(lambda v: v is not False) | ~df["key_facts"].map(bool)
                ),
                name="unanswerable rows must have no key_facts",
            ),
        ],
        strict=True,
    )


def _failures(
    frame: pd.DataFrame, lines: list[int], exc: pa.errors.SchemaErrors
) -> list[RowProblem]:
    problems: dict[tuple[int, str], RowProblem] = {}
    for _, case in exc.failure_cases.iterrows():
        index = case["index"]
        check = str(case["check"])
        wide = case["schema_context"] == "DataFrameSchema"
        column = "" if wide or not isinstance(case["column"], str) else case["column"]
        if index is None or pd.isna(index):  # a column-level failure
            problems[(0, check)] = RowProblem(0, "", f"column {column or '?'}: {check}")
            continue
        row = int(index)
        message = f"{column} must be {check}" if column else check
        if check == "field_uniqueness":
            message = "id is not unique"
        example_id = str(frame.at[row, "id"])
        problems[(lines[row], message)] = RowProblem(lines[row], example_id, message)
    return list(problems.values())


def dataset_version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def load_dataset(path: Path, name: str | None = None) -> EvaluationDataset:
    """Read and validate a JSON Lines dataset; problems are collected, not raised."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such evaluation dataset")
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    problems: list[RowProblem] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(RowProblem(number, "", f"not valid JSON: {exc.msg}"))
            continue
        if not isinstance(record, dict):
            problems.append(RowProblem(number, "", "a row must be a JSON object"))
            continue
        unknown = sorted(set(record) - set(COLUMNS))
        missing = sorted({"id", "question"} - set(record))
        if unknown or missing:
            detail = f"unknown fields {unknown}" if unknown else f"missing fields {missing}"
            problems.append(RowProblem(number, str(record.get("id", "")), detail))
            continue
        defaults = {"reference": "", "key_facts": [], "relevant_sources": [], "paraphrases": []}
        records.append({**defaults, "answerable": True, **record})
        records[-1]["answerable"] = record.get("answerable", True)
        lines.append(number)
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    if records:
        try:
            _schema().validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            problems += _failures(frame, lines, exc)
    else:
        problems.append(RowProblem(0, "", "the dataset has no rows"))
    bad_lines = {p.line for p in problems}
    examples = [
        Example.model_validate(r)
        for r, line in zip(records, lines, strict=True)
        if line not in bad_lines and not problems
    ]
    return EvaluationDataset(
        name=name or path.stem,
        path=path,
        version=dataset_version(path),
        examples=examples,
        problems=sorted(problems, key=lambda p: (p.line, p.message)),
    )
