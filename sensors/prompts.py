"""Watches the prompt directories and requests a run when a template's content changes.

The cursor maps each prompt to its file's content hash, so an edited template (and every prompt
that extends it) is materialized, checked and registered; a touched but unchanged file is not.
A prompt the cursor does not know starts from the hash its template asset last recorded, so a
sensor switched on over an existing home (a first `make ui` after `make demo`) requests nothing.
It also counts the runs requested: the run key is that count with the hashes, so a revert
(A -> B -> A) gets a new run key instead of repeating one that Dagster would silently drop.
"""

import hashlib
import json
from collections.abc import Iterable

import dagster as dg

from agent_platform.prompts import PromptRepository, file_hashes
from assets.prompts import (
    GROUP,
    TESTS_CHECK,
    VALID_CHECK,
    prompt_assets,
    prompt_names,
    template_key,
    version_key,
)
from resources.prompts import PromptsResource


def build_prompt_sensor(
    names: Iterable[str], *, name: str = "prompt_files_sensor", minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    """A sensor over the prompts that have assets (`names`); others need a code reload."""
    known = set(names)

    @dg.sensor(
        name=name,
        target=dg.AssetSelection.groups(GROUP),
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(
        context: dg.SensorEvaluationContext, prompts: PromptsResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Changed prompt file → one run for that prompt and the prompts that extend it."""
        dirs = prompts.prompt_dirs
        hashes = file_hashes(dirs)
        previous, runs = _read_cursor(context.cursor)
        for missing in (known & hashes.keys()) - previous.keys():
            previous[missing] = _materialized_hash(context.instance, missing)
        changed = {n for n, digest in hashes.items() if previous.get(n) != digest}
        cursor = _cursor(hashes, runs)
        if not changed:
            return dg.SensorResult(skip_reason="no prompt file changed", cursor=cursor)
        repo = PromptRepository.from_dirs(dirs)
        affected = set(changed)
        for changed_name in changed:
            affected.update(repo.descendants(changed_name) if changed_name in repo else [])
        unknown = sorted(affected - known)
        if unknown:
            context.log.warning(f"prompts without assets (reload the code location): {unknown}")
        targets = sorted(affected & known)
        if not targets:
            return dg.SensorResult(
                skip_reason=f"changed prompts have no assets: {unknown}", cursor=cursor
            )
        runs += 1
        digest = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:20]
        request = dg.RunRequest(
            run_key=f"prompts-{runs}-{digest}",
            asset_selection=[k for n in targets for k in (template_key(n), version_key(n))],
            asset_check_keys=[
                dg.AssetCheckKey(template_key(n), check)
                for n in targets
                for check in (VALID_CHECK, TESTS_CHECK)
            ],
            tags={"agent_platform/prompts": ",".join(targets)[:200]},
        )
        return dg.SensorResult(run_requests=[request], cursor=_cursor(hashes, runs))

    return _sensor


def _materialized_hash(instance: dg.DagsterInstance, name: str) -> str | None:
    """The file hash the prompt's template asset last recorded: the baseline of a prompt the
    cursor does not know yet (a first tick, or a prompt added by a code reload), so starting the
    sensor over an existing home requests nothing that was already materialized."""
    event = instance.get_latest_materialization_event(template_key(name))
    materialization = event.asset_materialization if event else None
    recorded = materialization.metadata.get("file_sha256") if materialization else None
    return str(recorded.value) if recorded is not None else None


def _read_cursor(cursor: str | None) -> tuple[dict[str, str], int]:
    """(file hashes, runs requested so far); a cursor of the older hashes-only form counts 0."""
    data = json.loads(cursor) if cursor else {}
    if isinstance(data.get("files"), dict):
        return data["files"], int(data.get("runs", 0))
    return data, 0


def _cursor(hashes: dict[str, str], runs: int) -> str:
    return json.dumps({"files": hashes, "runs": runs}, sort_keys=True)


prompt_files_sensor = build_prompt_sensor(prompt_names(prompt_assets))
