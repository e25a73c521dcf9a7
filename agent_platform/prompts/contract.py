"""A prompt's variable contract: what it declares (with inheritance), inputs checked against it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent_platform.prompts.errors import PromptInputError
from agent_platform.prompts.spec import PromptFile, VariableSpec


def effective_variables(chain: Sequence[PromptFile]) -> dict[str, VariableSpec]:
    """Declared variables of a prompt and its ancestors (root first; children override)."""
    merged: dict[str, VariableSpec] = {}
    for prompt in chain:
        if prompt.spec is not None:
            merged.update(prompt.spec.variables)
    return dict(sorted(merged.items()))


def input_issues(declared: Mapping[str, VariableSpec], inputs: Mapping[str, Any]) -> list[str]:
    """Every way `inputs` break the contract: unknown, missing required, wrong type."""
    issues = [f"unknown variable {key!r}" for key in sorted(set(inputs) - set(declared))]
    for key, spec in declared.items():
        if key not in inputs:
            if spec.required:
                issues.append(f"missing required variable {key!r} ({spec.type})")
        elif not spec.accepts(inputs[key]):
            got = type(inputs[key]).__name__
            issues.append(f"variable {key!r} must be {spec.type}, got {got}")
    return issues


def prepare_inputs(
    name: str, declared: Mapping[str, VariableSpec], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Validated inputs with defaults for optional variables; raises `PromptInputError`."""
    issues = input_issues(declared, inputs)
    if issues:
        raise PromptInputError(f"prompt {name!r}: " + "; ".join(issues))
    prepared = {key: spec.default for key, spec in declared.items() if not spec.required}
    prepared.update(inputs)
    return prepared


def contract_of(declared: Mapping[str, VariableSpec]) -> dict[str, dict[str, Any]]:
    """The parts of the contract compared for semver: type, required and, for an optional
    variable, its default (as JSON text), since a new default changes the rendered text."""
    contract: dict[str, dict[str, Any]] = {}
    for key, spec in sorted(declared.items()):
        contract[key] = {"type": spec.type, "required": spec.required}
        if not spec.required:
            contract[key]["default"] = json.dumps(spec.default, sort_keys=True, default=str)
    return contract
