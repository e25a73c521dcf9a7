"""Schedules: a daily backup of every tenant's index, a weekly reindex and key rotation."""

import dagster as dg

from assets.jobs import index_backup_job, reindex_job
from assets.keys import key_rotation_job
from assets.partitions import tenants_partitions


def _per_tenant(context: dg.ScheduleEvaluationContext, prefix: str) -> list[dg.RunRequest]:
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [
        dg.RunRequest(partition_key=tenant, run_key=f"{prefix}-{tenant}-{tick}")
        for tenant in context.instance.get_dynamic_partitions(tenants_partitions.name)
    ]


@dg.schedule(
    job=index_backup_job,
    cron_schedule="0 2 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_index_backup(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """02:00 every day: snapshot each tenant's index; snapshots older than 30 days are pruned."""
    return _per_tenant(context, "backup")


@dg.schedule(
    job=reindex_job,
    cron_schedule="0 3 * * 0",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def weekly_reindex(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """03:00 on Sundays: rebuild each tenant's index from stored vectors, swapped in atomically."""
    return _per_tenant(context, "reindex")


@dg.schedule(
    job=key_rotation_job,
    cron_schedule="0 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def key_rotation(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """04:00 daily: rotate the encryption keys once they are 30 days old (a no-op before)."""
    tick = context.scheduled_execution_time.strftime("%Y%m%d")
    return dg.RunRequest(run_key=f"key-rotation-{tick}")
