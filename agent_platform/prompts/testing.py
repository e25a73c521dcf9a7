"""Prompt tests: render each declared test case and check its expectations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_platform.prompts.contract import effective_variables, prepare_inputs
from agent_platform.prompts.errors import Problem, PromptError, problem
from agent_platform.prompts.isolation import render_isolated
from agent_platform.prompts.repository import PromptRepository
from agent_platform.prompts.spec import Expectation, PromptFile
from agent_platform.prompts.tokens import TokenCounter


@dataclass(frozen=True)
class TestOutcome:
    """One test case's result: the rendered text, its token count and any failed assertion."""

    __test__ = False  # not a pytest class

    prompt: str
    case: str
    rendered: str
    tokens: int
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def missing_tests(prompt: PromptFile) -> list[Problem]:
    """The problem of a prompt that declares no test case: an untested prompt is invalid, for
    `prompts validate`, `prompts test`, publishing and the Dagster checks alike."""
    if prompt.spec is None or prompt.spec.tests:
        return []
    message = (
        f"prompt {prompt.name!r} declares no test cases; add at least one under 'tests:' in the "
        "metadata header"
    )
    return [problem(prompt.path, prompt.line_of("tests:"), message, "test")]


def check_expectation(text: str, tokens: int, expect: Expectation) -> list[str]:
    """Failed assertions of `expect` on a rendered text, each saying what was wrong."""
    failures = [f"does not contain {needle!r}" for needle in expect.contains if needle not in text]
    failures += [f"contains {needle!r}" for needle in expect.not_contains if needle in text]
    failures += [
        f"does not match regex {pattern!r}"
        for pattern in expect.regex
        if not re.search(pattern, text, re.MULTILINE)
    ]
    if expect.max_tokens is not None and tokens > expect.max_tokens:
        failures.append(f"has {tokens} tokens, more than max_tokens {expect.max_tokens}")
    return failures


def run_prompt_tests(
    repo: PromptRepository, name: str, tokenizer_dirs: Mapping[str, Path | str] | None = None
) -> list[TestOutcome]:
    """Run every test case of prompt `name` (rendered in a resource-limited child process); a
    render error is a failed test, not an exception."""
    prompt = repo.get(name)
    if prompt.spec is None:
        return [TestOutcome(name, "<header>", "", 0, [str(p) for p in prompt.problems])]
    untested = missing_tests(prompt)
    if untested:
        return [TestOutcome(name, "<tests>", "", 0, [str(p) for p in untested])]
    counter = TokenCounter.for_model(prompt.spec.model.name, tokenizer_dirs)
    outcomes: dict[int, TestOutcome] = {}
    pending: list[tuple[int, dict[str, Any]]] = []
    for index, case in enumerate(prompt.spec.tests):
        try:
            declared = effective_variables(repo.chain(name))
            pending.append((index, prepare_inputs(name, declared, case.inputs)))
        except (PromptError, ValueError) as exc:
            outcomes[index] = TestOutcome(name, case.name, "", 0, [f"does not render: {exc}"])
    try:  # untrusted templates render in a resource-limited child process
        rendered: list[str | PromptError] = list(
            render_isolated(repo.sources, name, [inputs for _, inputs in pending])
        )
    except PromptError as exc:
        rendered = [exc] * len(pending)
    for (index, _), text in zip(pending, rendered, strict=True):
        case = prompt.spec.tests[index]
        if isinstance(text, PromptError):
            outcomes[index] = TestOutcome(name, case.name, "", 0, [f"does not render: {text}"])
            continue
        tokens = counter.count(text)
        failures = check_expectation(text, tokens, case.expect)
        outcomes[index] = TestOutcome(name, case.name, text, tokens, failures)
    return [outcomes[index] for index in sorted(outcomes)]
