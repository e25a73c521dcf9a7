"""The runtime serves the registered `champion` by default, and the default config before one;
evaluated accuracy feeds the router's quality scores."""

from agent_platform.model_registry import AgentModelRegistry
from agent_platform.runtime import AgentConfig, AgentRuntime, RetrievalConfig


def test_runtime_serves_the_champion_by_default(eval_settings) -> None:
    before = AgentRuntime.from_settings(eval_settings)
    try:
        assert before.agent == AgentConfig()
    finally:
        before.close()

    champion = AgentConfig(
        name=eval_settings.serving_agent,
        models=["extractive"],
        retrieval=RetrievalConfig(k=3, mode="vector", min_relevance=0.6),
    )
    registry = AgentModelRegistry.from_settings(eval_settings)
    version, _ = registry.register(champion, {"version_key": "serving-test"})
    registry.record_evaluation(
        champion.name,
        version.version,
        run_id="manual",
        metrics={"accuracy": 0.42},
        gates_passed=True,
        dataset_version="test",
    )
    registry.promote(champion.name, version.version, by="test")

    served = AgentRuntime.from_settings(eval_settings)
    try:
        assert served.agent == champion
        # the evaluated accuracy replaces the catalogue's quality prior (0.6) in routing
        performance = served.services.router.performance
        assert performance.get("extractive").quality == 0.42
        assert performance.get("gemma-3-270m").quality is None  # never evaluated alone
    finally:
        served.close()
