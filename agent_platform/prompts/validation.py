"""Quality control of a prompt: syntax, semantics (variables, inheritance, sandbox) and context.

Every check collects `Problem`s instead of raising, so `agent-platform prompts validate` can list
them all as `path:line: message`, and the Dagster check can show them in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from agent_platform.prompts.contract import effective_variables, input_issues, prepare_inputs
from agent_platform.prompts.errors import (
    Problem,
    PromptInputError,
    PromptNotFoundError,
    PromptRenderError,
    problem,
)
from agent_platform.prompts.isolation import render_isolated
from agent_platform.prompts.repository import PromptRepository
from agent_platform.prompts.sandbox import make_environment, private_accesses
from agent_platform.prompts.spec import PromptFile
from agent_platform.prompts.testing import missing_tests
from agent_platform.prompts.tokens import TokenCounter


def _used_names(ast: nodes.Template, env_globals: Mapping[str, object]) -> set[str]:
    return set(meta.find_undeclared_variables(ast)) - set(env_globals)


def _first_use(ast: nodes.Template, name: str) -> int:
    lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines, default=1)


def _extends_target(ast: nodes.Template) -> tuple[str | None, int]:
    node = ast.find(nodes.Extends)
    if node is None:
        return None, 1
    if isinstance(node.template, nodes.Const) and isinstance(node.template.value, str):
        return node.template.value, node.lineno
    return "<dynamic>", node.lineno


def syntax_problems(prompt: PromptFile, repo: PromptRepository) -> list[Problem]:
    """Header problems, then Jinja parse errors at their line."""
    env = make_environment(repo.sources)
    try:
        env.parse(prompt.source, name=prompt.name)
    except TemplateSyntaxError as exc:
        return [
            *prompt.problems,
            problem(prompt.path, exc.lineno, exc.message or str(exc), "syntax"),
        ]
    return list(prompt.problems)


def semantic_problems(prompt: PromptFile, repo: PromptRepository) -> list[Problem]:
    """Sandbox escapes, missing test cases, inheritance (parent, cycles, blocks) and variables
    used vs declared."""
    env = make_environment(repo.sources)
    path, spec = prompt.path, prompt.spec
    ast = env.parse(prompt.source, name=prompt.name)
    problems = [
        problem(path, line, f"sandbox: {why}", "sandbox") for line, why in private_accesses(ast)
    ]
    if spec is None:
        return problems
    problems += missing_tests(prompt)
    target, extends_line = _extends_target(ast)
    if target == "<dynamic>":
        problems.append(problem(path, extends_line, "{% extends %} must name a prompt literally"))
    elif target != spec.extends:
        problems.append(
            problem(
                path,
                extends_line if target else prompt.line_of("extends"),
                f"header says extends {spec.extends!r} but the template extends {target!r}",
            )
        )
    try:
        chain = repo.chain(prompt.name)
    except PromptNotFoundError as exc:
        return [*problems, problem(path, extends_line, f"unknown parent: {exc}")]
    except ValueError as exc:
        return [*problems, problem(path, extends_line, str(exc))]
    ancestor_blocks: set[str] = set()
    used: set[str] = set()
    for ancestor in chain[:-1]:
        try:
            ancestor_ast = env.parse(ancestor.source, name=ancestor.name)
        except TemplateSyntaxError:
            problems.append(problem(path, extends_line, f"parent {ancestor.name!r} does not parse"))
            return problems
        ancestor_blocks |= {b.name for b in ancestor_ast.find_all(nodes.Block)}
        used |= _used_names(ancestor_ast, env.globals)
    if spec.extends:
        for block in ast.find_all(nodes.Block):
            if block.name not in ancestor_blocks:
                problems.append(
                    problem(
                        path,
                        block.lineno,
                        f"block {block.name!r} does not exist in parent {spec.extends!r}",
                    )
                )
    declared = effective_variables(chain)
    own_used = _used_names(ast, env.globals)
    for name in sorted(own_used - set(declared)):
        problems.append(
            problem(path, _first_use(ast, name), f"variable {name!r} is used but not declared")
        )
    for name in sorted(set(spec.variables) - own_used - used):
        problems.append(
            problem(path, prompt.line_of(f"{name}:"), f"variable {name!r} is declared but unused")
        )
    for case in spec.tests:
        for issue in input_issues(declared, case.inputs):
            problems.append(
                problem(path, prompt.line_of(case.name), f"test {case.name!r}: {issue}")
            )
    return problems


def context_problems(
    prompt: PromptFile, repo: PromptRepository, counter: TokenCounter
) -> list[Problem]:
    """Each test case must render inside the sandbox (in a resource-limited child process: the
    template is untrusted) and fit the target model's context budget."""
    if prompt.spec is None:
        return []
    declared = effective_variables(repo.chain(prompt.name))
    budget = prompt.spec.model.context_tokens
    problems: list[Problem] = []
    cases: list[tuple[str, int]] = []
    inputs: list[dict[str, Any]] = []
    for case in prompt.spec.tests:
        line = prompt.line_of(case.name)
        try:
            inputs.append(prepare_inputs(prompt.name, declared, case.inputs))
        except (PromptInputError, ValueError) as exc:
            problems.append(problem(prompt.path, line, f"test {case.name!r}: {exc}", "render"))
            continue
        cases.append((case.name, line))
    try:
        rendered = render_isolated(repo.sources, prompt.name, inputs)
    except PromptRenderError as exc:
        line = cases[0][1] if cases else prompt.line_of("tests:")
        return [*problems, problem(prompt.path, line, str(exc), "render")]
    for (case_name, line), text in zip(cases, rendered, strict=True):
        if isinstance(text, PromptRenderError):
            problems.append(problem(prompt.path, line, f"test {case_name!r}: {text}", "render"))
            continue
        tokens = counter.count(text)
        if tokens > budget:
            problems.append(
                problem(
                    prompt.path,
                    line,
                    f"test {case_name!r} renders to {tokens} tokens ({counter.method}), over the "
                    f"context budget of {budget} for model {prompt.spec.model.name!r}",
                    "context",
                )
            )
    return problems


def validate_prompt(
    repo: PromptRepository, name: str, tokenizer_dirs: Mapping[str, Path | str] | None = None
) -> list[Problem]:
    """All problems of one prompt; later stages run only when the earlier ones pass."""
    prompt = repo.get(name)
    problems = syntax_problems(prompt, repo)
    if problems:
        return problems
    problems = semantic_problems(prompt, repo)
    if problems or prompt.spec is None:
        return problems
    counter = TokenCounter.for_model(prompt.spec.model.name, tokenizer_dirs)
    return context_problems(prompt, repo, counter)


def validate_repository(
    repo: PromptRepository, tokenizer_dirs: Mapping[str, Path | str] | None = None
) -> dict[str, list[Problem]]:
    """Problems by prompt name (repository-level problems under the empty name)."""
    report = {"": repo.problems} if repo.problems else {}
    for name in repo.names():
        found = validate_prompt(repo, name, tokenizer_dirs)
        if found:
            report[name] = found
    return report
