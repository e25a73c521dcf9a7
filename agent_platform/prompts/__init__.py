"""Prompts as code: versioned, validated, tested Jinja2 templates registered in MLflow.

The library side of the prompt system (no Dagster import): parse and validate prompt files,
run their tests, publish versions to MLflow's prompt registry, review and promote them, and
serve them at runtime through `PromptRegistry`.

Names are imported on first use (PEP 562), so a process that needs only the sandbox (the
isolated renderer of untrusted templates) does not import MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AbSplit": "agent_platform.prompts.ab",
    "Variant": "agent_platform.prompts.ab",
    "render_changelog": "agent_platform.prompts.changelog",
    "Problem": "agent_platform.prompts.errors",
    "PromotionRefusedError": "agent_platform.prompts.errors",
    "PromptError": "agent_platform.prompts.errors",
    "PromptInputError": "agent_platform.prompts.errors",
    "PromptNotFoundError": "agent_platform.prompts.errors",
    "PromptRenderError": "agent_platform.prompts.errors",
    "PromptValidationError": "agent_platform.prompts.errors",
    "PromotionService": "agent_platform.prompts.promotion",
    "Publication": "agent_platform.prompts.publish",
    "check_prompt": "agent_platform.prompts.publish",
    "publish_prompt": "agent_platform.prompts.publish",
    "LoadedPrompt": "agent_platform.prompts.registry",
    "PromptRegistry": "agent_platform.prompts.registry",
    "RenderedPrompt": "agent_platform.prompts.registry",
    "PromptRepository": "agent_platform.prompts.repository",
    "default_prompt_dirs": "agent_platform.prompts.repository",
    "file_hashes": "agent_platform.prompts.repository",
    "Approval": "agent_platform.prompts.review",
    "ReviewEvent": "agent_platform.prompts.review",
    "ReviewLog": "agent_platform.prompts.review",
    "ApproverRoles": "agent_platform.prompts.roles",
    "RolesFileError": "agent_platform.prompts.roles",
    "load_roles": "agent_platform.prompts.roles",
    "PromptFile": "agent_platform.prompts.spec",
    "PromptSpec": "agent_platform.prompts.spec",
    "parse_prompt_source": "agent_platform.prompts.spec",
    "CANDIDATE": "agent_platform.prompts.store",
    "CHALLENGER": "agent_platform.prompts.store",
    "MlflowPromptStore": "agent_platform.prompts.store",
    "PRODUCTION": "agent_platform.prompts.store",
    "StoredVersion": "agent_platform.prompts.store",
    "TestOutcome": "agent_platform.prompts.testing",
    "run_prompt_tests": "agent_platform.prompts.testing",
    "TokenCounter": "agent_platform.prompts.tokens",
    "validate_prompt": "agent_platform.prompts.validation",
    "validate_repository": "agent_platform.prompts.validation",
}

if TYPE_CHECKING:
    from agent_platform.prompts.ab import AbSplit, Variant
    from agent_platform.prompts.changelog import render_changelog
    from agent_platform.prompts.errors import (
        Problem,
        PromotionRefusedError,
        PromptError,
        PromptInputError,
        PromptNotFoundError,
        PromptRenderError,
        PromptValidationError,
    )
    from agent_platform.prompts.promotion import PromotionService
    from agent_platform.prompts.publish import Publication, check_prompt, publish_prompt
    from agent_platform.prompts.registry import LoadedPrompt, PromptRegistry, RenderedPrompt
    from agent_platform.prompts.repository import PromptRepository, default_prompt_dirs, file_hashes
    from agent_platform.prompts.review import Approval, ReviewEvent, ReviewLog
    from agent_platform.prompts.roles import ApproverRoles, RolesFileError, load_roles
    from agent_platform.prompts.spec import PromptFile, PromptSpec, parse_prompt_source
    from agent_platform.prompts.store import (
        CANDIDATE,
        CHALLENGER,
        PRODUCTION,
        MlflowPromptStore,
        StoredVersion,
    )
    from agent_platform.prompts.testing import TestOutcome, run_prompt_tests
    from agent_platform.prompts.tokens import TokenCounter
    from agent_platform.prompts.validation import validate_prompt, validate_repository

__all__ = [
    "CANDIDATE",
    "CHALLENGER",
    "PRODUCTION",
    "AbSplit",
    "Approval",
    "ApproverRoles",
    "LoadedPrompt",
    "MlflowPromptStore",
    "Problem",
    "PromotionRefusedError",
    "PromotionService",
    "PromptError",
    "PromptFile",
    "PromptInputError",
    "PromptNotFoundError",
    "PromptRegistry",
    "PromptRenderError",
    "PromptRepository",
    "PromptSpec",
    "PromptValidationError",
    "Publication",
    "RenderedPrompt",
    "ReviewEvent",
    "ReviewLog",
    "RolesFileError",
    "StoredVersion",
    "TestOutcome",
    "TokenCounter",
    "Variant",
    "check_prompt",
    "default_prompt_dirs",
    "file_hashes",
    "load_roles",
    "parse_prompt_source",
    "publish_prompt",
    "render_changelog",
    "run_prompt_tests",
    "validate_prompt",
    "validate_repository",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
