"""Prompts as code: versioned, validated, tested Jinja2 templates registered in MLflow.

The library side of the prompt system (no Dagster import): parse and validate prompt files,
run their tests, publish versions to MLflow's prompt registry, review and promote them, and
serve them at runtime through `PromptRegistry`.
"""

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
    "StoredVersion",
    "TestOutcome",
    "TokenCounter",
    "Variant",
    "check_prompt",
    "default_prompt_dirs",
    "file_hashes",
    "parse_prompt_source",
    "publish_prompt",
    "render_changelog",
    "run_prompt_tests",
    "validate_prompt",
    "validate_repository",
]
