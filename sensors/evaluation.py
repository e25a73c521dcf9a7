"""When to evaluate: on a new prompt version, index snapshot or agent configuration (sensor), and
daily for the serving champion (the quality-gate schedule).

Without a cursor (a first tick) the sensor starts from the state the last evaluation recorded, so
switching it on over an existing home (a first `make ui` after `make demo`) requests nothing
unless something changed since.
"""

import hashlib
import json

import dagster as dg

from assets.evaluation import evaluated_model_versions, evaluation_job, quality_gate_job
from resources.model_registry import EvaluationResource, ModelRegistryResource


def _last_evaluated_state(instance: dg.DagsterInstance) -> dict[str, dict[str, str]]:
    """The `watched_state` the last `evaluated_model_versions` materialization recorded."""
    event = instance.get_latest_materialization_event(evaluated_model_versions.key)
    materialization = event.asset_materialization if event else None
    recorded = materialization.metadata.get("watched_state") if materialization else None
    return dict(recorded.value) if recorded is not None else {}


@dg.sensor(
    job=evaluation_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING
)
def evaluation_request_sensor(
    context: dg.SensorEvaluationContext,
    evaluation: EvaluationResource,
    model_registry: ModelRegistryResource,
) -> dg.SensorResult:
    """Requests an evaluation round when what an agent version is made of changes."""
    state = evaluation.watched_state(model_registry)
    if context.cursor:
        previous = json.loads(context.cursor)
    else:
        previous = _last_evaluated_state(context.instance)
    cursor = json.dumps(state, sort_keys=True)
    changed = sorted(
        f"{key}.{field}"
        for key, fields in state.items()
        for field, value in fields.items()
        if previous.get(key, {}).get(field) != value
    )
    if not changed:
        return dg.SensorResult(
            skip_reason="no new prompt version, index snapshot or config", cursor=cursor
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
