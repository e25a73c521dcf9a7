"""The runtime serves the registered `champion` by default, and the default config before one;
evaluated accuracy feeds the router's quality scores."""

from agent_platform.model_registry import AgentModelRegistry
from agent_platform.runtime import AgentConfig, AgentRuntime, RetrievalConfig
from agent_platform.settings import Settings


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


def test_requests_to_the_champion_are_traced_to_its_mlflow_version(home) -> None:
    """A served request's trace lands in the agent's experiment, linked to the LoggedModel of the
    version that answered, next to the JSON-lines file the local profile always writes."""
    from mlflow import MlflowClient

    settings = Settings(home=home)
    config = AgentConfig(name=settings.serving_agent, models=["extractive"])
    registry = AgentModelRegistry.from_settings(settings)
    version, _ = registry.register(config, {"version_key": "traced", "candidate": "extractive"})
    registry.record_evaluation(
        config.name,
        version.version,
        run_id="manual",
        metrics={"accuracy": 1.0},
        gates_passed=True,
        dataset_version="test",
    )
    registry.promote(config.name, version.version, by="test")

    runtime = AgentRuntime.from_settings(settings)
    try:
        response = runtime.run(tenant="sample", user="ann", input="How do I list the snapshots?")
    finally:
        runtime.close()  # flushes the span processors

    traces = MlflowClient(settings.resolved_mlflow_tracking_uri).search_traces(
        locations=[registry.experiment_id(config.name)], model_id=version.model_id
    )
    assert [t.info.trace_id for t in traces] == [f"tr-{response.trace_id}"]
    trace = traces[0]
    assert trace.info.trace_metadata["mlflow.modelId"] == version.model_id
    assert trace.info.tags["mlflow.traceName"] == f"invoke_agent {config.name}"
    assert {s.name for s in trace.data.spans} >= {f"invoke_agent {config.name}", "chat extractive"}
    # the OTLP/JSON-lines exporter of the profile still receives every span
    exported = (home / "telemetry" / "traces.jsonl").read_text()
    assert response.trace_id in exported
