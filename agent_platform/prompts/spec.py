"""The prompt file format: a Jinja2 template whose first lines are a YAML metadata header.

The header sits in a Jinja comment so the whole file is the template and Jinja's line numbers are
the file's line numbers::

    {#- ---
    name: grounded_qa_system
    description: System prompt for grounded question answering.
    variables:
      sources: {type: list, required: true}
    tests: [...]
    --- -#}
    You are ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent_platform.prompts.errors import Problem, problem

PROMPT_SUFFIX = ".jinja"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DEFAULT_CONTEXT_TOKENS = 16_384
DEFAULT_REQUIRED_APPROVALS = ("reviewer",)
MAX_TEMPLATE_CHARS = 100_000  # MLflow keeps the template in a registry tag of this size
VariableType = Literal["str", "int", "float", "bool", "list", "dict", "any"]

_HEADER = re.compile(r"\A\{#-?[ \t]*---[ \t]*\n(?P<body>.*?)^---[ \t]*-?#\}", re.DOTALL | re.M)
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariableSpec(_Model):
    """One declared variable: its type, whether callers must pass it, and its default."""

    type: VariableType = "str"
    required: bool = True
    default: Any = None
    description: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether `value` has the declared type (None is allowed for optional variables)."""
        if value is None:
            return not self.required
        if self.type == "any":
            return True
        if self.type in {"int", "float"} and isinstance(value, bool):
            return False
        return isinstance(value, _PYTHON_TYPES[self.type])


class Expectation(_Model):
    """Assertions on the rendered text of one test case."""

    contains: list[str] = Field(default_factory=list)
    not_contains: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)

    @field_validator("contains", "not_contains", "regex", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PromptTestCase(_Model):
    """Inputs to render with, and what the rendered prompt must (not) contain."""

    name: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    expect: Expectation = Field(default_factory=Expectation)


class ModelHint(_Model):
    """The model a prompt targets: its context budget and, if known locally, its tokenizer."""

    name: str = "default"
    context_tokens: int = Field(default=DEFAULT_CONTEXT_TOKENS, ge=16)


class ReviewPolicy(_Model):
    """Approver roles that must sign off before a version may serve production traffic."""

    required_approvals: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REQUIRED_APPROVALS), min_length=1
    )

    @field_validator("required_approvals")
    @classmethod
    def _role_names(cls, roles: list[str]) -> list[str]:
        for role in roles:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", role):
                raise ValueError(f"approver role {role!r} must be lower-case letters, digits, -_")
        return sorted(set(roles))


class PromptSpec(_Model):
    """Everything the metadata header declares about a prompt."""

    name: str
    description: str = ""
    extends: str | None = None
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    model: ModelHint = Field(default_factory=ModelHint)
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    tests: list[PromptTestCase] = Field(default_factory=list)

    @field_validator("name", "extends")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a prompt name (lower-case, digits, '_')")
        return value


@dataclass(frozen=True)
class PromptFile:
    """A prompt file as read from disk: its source, its parsed header, and header problems."""

    name: str
    path: Path
    source: str
    spec: PromptSpec | None
    header_lines: int = 0
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    def line_of(self, needle: str) -> int:
        """First line (1-based) of the header mentioning `needle`, for pointing at metadata."""
        for number, line in enumerate(self.source.splitlines()[: self.header_lines], start=1):
            if needle in line:
                return number
        return 1


def parse_prompt_source(source: str, path: Path, name: str | None = None) -> PromptFile:
    """Parse a prompt's text; problems are collected, never raised, so a CLI can list them all."""
    name = name or path.name.removesuffix(PROMPT_SUFFIX)
    if len(source) > MAX_TEMPLATE_CHARS:
        msg = f"template is {len(source)} characters; the limit is {MAX_TEMPLATE_CHARS}"
        return PromptFile(name, path, source, None, 0, (problem(path, 1, msg, "syntax"),))
    match = _HEADER.match(source)
    if not match:
        msg = "missing metadata header: the file must start with '{#- ---', YAML, '--- -#}'"
        return PromptFile(name, path, source, None, 0, (problem(path, 1, msg, "syntax"),))
    header_lines = source[: match.end()].count("\n") + 1
    try:
        data = yaml.safe_load(match.group("body")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        msg = f"metadata header is not valid YAML: {reason}"
        return PromptFile(
            name, path, source, None, header_lines, (problem(path, line, msg, "syntax"),)
        )
    if not isinstance(data, dict):
        msg = "metadata header must be a YAML mapping"
        return PromptFile(
            name, path, source, None, header_lines, (problem(path, 2, msg, "syntax"),)
        )
    draft = PromptFile(name, path, source, None, header_lines)
    try:
        spec = PromptSpec.model_validate(data)
    except ValidationError as exc:
        invalid = tuple(
            problem(
                path,
                draft.line_of(f"{err['loc'][-1]}") if err["loc"] else 2,
                f"metadata {'.'.join(str(p) for p in err['loc']) or 'header'}: {err['msg']}",
            )
            for err in exc.errors()
        )
        return PromptFile(name, path, source, None, header_lines, invalid)
    problems: tuple[Problem, ...] = ()
    if spec.name != name:
        msg = f"header name {spec.name!r} does not match the file name {name!r}{PROMPT_SUFFIX}"
        problems = (problem(path, draft.line_of("name:"), msg),)
    return PromptFile(name, path, source, spec, header_lines, problems)


def read_prompt_file(path: Path) -> PromptFile:
    """Read and parse one `*.jinja` prompt file."""
    return parse_prompt_source(path.read_text(encoding="utf-8"), path)
