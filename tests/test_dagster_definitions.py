"""What the Dagster UI shows of the code location: lineage, names, badges and automation."""

from __future__ import annotations

import dagster as dg

from agent_platform.definitions import build_definitions
from agent_platform.settings import Settings

EVALUATED = dg.AssetKey("evaluated_model_versions")
READINESS = dg.AssetKey("readiness_report")


def _parents(defs: dg.Definitions, key: dg.AssetKey) -> set[str]:
    return {p.to_user_string() for p in defs.resolve_asset_graph().get(key).parent_keys}


def test_evaluation_depends_on_the_prompt_versions_and_the_tenant_snapshot(
    settings: Settings,
) -> None:
    defs = build_definitions(settings)
    assert _parents(defs, EVALUATED) == {
        "evaluation_dataset",
        "index_snapshot",
        "prompts/grounded_qa_system_version",
        "prompts/grounded_qa_user_version",
    }
    spec = next(iter(defs.resolve_assets_def(EVALUATED).specs))
    [snapshot] = [d for d in spec.deps if d.asset_key == dg.AssetKey("index_snapshot")]
    assert snapshot.partition_mapping == dg.SpecificPartitionsPartitionMapping(["sample"])
    assert _parents(defs, dg.AssetKey("champion_quality")) == {
        "champion_promotion",
        "evaluation_dataset",
    }
    assert _parents(defs, READINESS) == {"champion_promotion", "champion_quality"}


def test_every_asset_has_its_own_name_in_the_graph(settings: Settings) -> None:
    """The graph labels nodes by the last part of the key: templates and versions must differ."""
    keys = build_definitions(settings).resolve_asset_graph().get_all_asset_keys()
    leaves = [key.path[-1] for key in keys]
    assert len(leaves) == len(set(leaves)), sorted(leaves)
    assert {"grounded_qa_system_template", "grounded_qa_system_version"} <= set(leaves)


def test_index_kinds_follow_the_configured_backend(settings: Settings) -> None:
    def kinds(backend_settings: Settings, name: str) -> set[str]:
        graph = build_definitions(backend_settings).resolve_asset_graph()
        return set(graph.get(dg.AssetKey(name)).kinds)

    assert settings.resolved_vector_backend == "embedded"
    assert kinds(settings, "vector_index") == {"sqlite", "hnswlib"}
    weaviate = settings.model_copy(
        update={"vector_backend": "weaviate", "weaviate_url": "http://127.0.0.1:1"}
    )
    assert kinds(weaviate, "vector_index") == {"weaviate"}
    assert kinds(weaviate, "index_snapshot") == {"weaviate", "parquet"}


def test_readiness_report_refreshes_after_a_promotion_decision_only(settings: Settings) -> None:
    """Starting the automation over an up-to-date report requests nothing; a new promotion
    decision (a re-evaluation) requests the report once."""
    defs = build_definitions(settings)
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["readiness_automation"].default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        for name in ("champion_promotion", "champion_quality", "readiness_report"):
            instance.report_runless_asset_event(dg.AssetMaterialization(name))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0
        instance.report_runless_asset_event(dg.AssetMaterialization("champion_promotion"))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor
        )
        assert second.get_num_requested(READINESS) == 1
        assert second.total_requested == 1
