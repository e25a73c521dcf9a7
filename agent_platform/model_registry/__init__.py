"""Agent model versions in MLflow: registration with lineage, aliases, promotion and rollback.

Library code (no Dagster import): the assets, the CLI and the serving runtime share it.
"""

from agent_platform.model_registry.audit import AliasEvent
from agent_platform.model_registry.errors import (
    ModelRegistryError,
    PromotionRefusedError,
    UnknownAgentError,
    UnknownVersionError,
)
from agent_platform.model_registry.lineage import (
    build_lineage,
    pin_prompt_versions,
    watched_state,
)
from agent_platform.model_registry.registry import (
    CHALLENGER,
    CHAMPION,
    AgentModelRegistry,
    AgentVersion,
)
from agent_platform.model_registry.serving import as_json, champion_config, champion_version

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AgentModelRegistry",
    "AgentVersion",
    "AliasEvent",
    "ModelRegistryError",
    "PromotionRefusedError",
    "UnknownAgentError",
    "UnknownVersionError",
    "as_json",
    "build_lineage",
    "champion_config",
    "champion_version",
    "pin_prompt_versions",
    "watched_state",
]
