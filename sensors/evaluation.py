"""When to evaluate: on a new prompt version, index snapshot or agent configuration (sensor), and
daily for the serving champion (the quality-gate schedule)."""

import hashlib
import json

import dagster as dg

from agent_platform.model_registry import watched_state
from assets.evaluation import evaluation_job, quality_gate_job
from resources.model_registry import EvaluationResource, ModelRegistryResource


@dg.sensor(
    job=evaluation_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING
)
def evaluation_request_sensor(
    context: dg.SensorEvaluationContext,
    evaluation: EvaluationResource,
    model_registry: ModelRegistryResource,
) -> dg.SensorResult:
    """Requests an evaluation round when what an agent version is made of changes."""
    plan = evaluation.plan()
    settings = model_registry.settings()
    state = {
        key: watched_state(settings, candidate.config, plan.tenant)
        for key, candidate in plan.candidates.items()
    }
    state["plan"] = {"content_hash": plan.content_hash}
    previous = json.loads(context.cursor) if context.cursor else {}
    cursor = json.dumps(state, sort_keys=True)
    if state == previous:
        return dg.SensorResult(skip_reason="no new prompt version, index snapshot or config")
    changed = sorted(
        f"{key}.{field}"
        for key, fields in state.items()
        for field, value in fields.items()
        if previous.get(key, {}).get(field) != value
    )
    run_key = hashlib.sha256(cursor.encode()).hexdigest()[:16]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=run_key, tags={"evaluation/reason": ", ".join(changed)[:200]})
        ],
        cursor=cursor,
    )


daily_quality_gate = dg.ScheduleDefinition(
    name="daily_quality_gate",
    job=quality_gate_job,
    cron_schedule="0 5 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-evaluates the champion every day at 05:00; fails when it drops below a gate.",
)
