"""Errors of the agent model registry; each message names the agent and version."""

from __future__ import annotations


class ModelRegistryError(Exception):
    """Base class: the CLI prints these as `error: …` without a traceback."""


class UnknownAgentError(ModelRegistryError):
    """No registered model of that name."""


class UnknownVersionError(ModelRegistryError):
    """The agent has no such version (or no such alias)."""


class PromotionRefusedError(ModelRegistryError):
    """A promotion or rollback that the rules forbid (no evaluation, failed gates, …)."""
