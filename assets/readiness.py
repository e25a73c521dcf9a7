"""The production-readiness report of the champion, shown in the UI and stored in MLflow.

It refreshes itself: an eager automation condition (evaluated by `readiness_automation`, on by
default) requests it after a promotion decision or a daily quality check updates, so the report
never describes a champion that has since changed.
"""

import dagster as dg

from agent_platform.readiness import build_report, write_report
from assets.evaluation import GROUP, champion_promotion, champion_quality
from resources.model_registry import EvaluationResource, ModelRegistryResource


class ReadinessConfig(dg.Config):
    """`run_tools=False` skips bandit and pip-audit (their items then say "could not run")."""

    run_tools: bool = True


@dg.asset(
    group_name=GROUP,
    deps=[champion_promotion, champion_quality],
    kinds={"mlflow", "html"},
    automation_condition=dg.AutomationCondition.eager(),
)
def readiness_report(
    context: dg.AssetExecutionContext,
    config: ReadinessConfig,
    evaluation: EvaluationResource,
    model_registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    """The spec's readiness checklist for the champion: tools where they can, sign-offs else."""
    registry = model_registry.registry()
    settings = model_registry.settings()
    report = build_report(
        settings,
        evaluation.plan(),
        registry,
        run_tools=config.run_tools,
        dagster_run_id=context.run_id,
    )
    report = write_report(report, settings, registry)
    for item in report.blockers():
        context.log.warning(f"not ready: {item.key}: {item.status}: {item.detail}")
    return dg.MaterializeResult(
        metadata={
            "ready": report.ready,
            "champion_version": report.champion or -1,
            "why": report.why or "champion present",
            "open_items": len(report.blockers()),
            "report": dg.MetadataValue.md(report.markdown()),
            "html": dg.MetadataValue.path(report.paths["html"]),
            "mlflow_run_id": report.mlflow_run_id,
            **{name: dg.MetadataValue.url(url) for name, url in report.links.items()},
        }
    )


readiness_job = dg.define_asset_job(
    "readiness_job",
    selection=dg.AssetSelection.assets(readiness_report),
    description="Write the champion's readiness report (Markdown, HTML, MLflow artifact).",
)

readiness_automation = dg.AutomationConditionSensorDefinition(
    "readiness_automation",
    target=dg.AssetSelection.assets(readiness_report),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes the readiness report when the champion's promotion or quality changes.",
)
