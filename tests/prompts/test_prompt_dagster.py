"""Prompt assets, blocking checks and the directory sensor, materialized for real."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from agent_platform.prompts import MlflowPromptStore, PromptRegistry
from assets.prompts import (
    TESTS_CHECK,
    VALID_CHECK,
    build_prompt_assets,
    prompt_asset_checks,
    prompt_assets,
    prompt_names,
    template_key,
    version_key,
)
from resources.prompts import PromptsResource
from sensors.prompts import build_prompt_sensor, prompt_files_sensor


@pytest.fixture
def resource(prompt_dir: Path, prompt_settings) -> PromptsResource:
    return PromptsResource.from_settings(prompt_settings, prompt_dirs=[prompt_dir])


def _materialize(prompt_dir: Path, resource: PromptsResource, instance: dg.DagsterInstance):
    assets, checks = build_prompt_assets([prompt_dir])
    return dg.materialize(
        [*assets, *checks], resources={"prompts": resource}, instance=instance, raise_on_error=False
    )


def _metadata(result, key: dg.AssetKey) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def test_composition_objects_load(prompt_settings) -> None:
    defs = dg.Definitions(
        assets=prompt_assets,
        asset_checks=prompt_asset_checks,
        sensors=[prompt_files_sensor],
        resources={"prompts": PromptsResource.from_settings(prompt_settings)},
    )
    dg.Definitions.validate_loadable(defs)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert {template_key("grounded_qa_system"), version_key("grounded_qa_system")} <= keys
    assert prompt_names(prompt_assets) == ["base_system", "grounded_qa_system", "grounded_qa_user"]
    child = defs.resolve_assets_def(version_key("grounded_qa_system"))
    assert version_key("base_system") in child.asset_deps[version_key("grounded_qa_system")]


def test_materialize_registers_and_blocks_bad_versions(
    prompt_dir: Path, resource: PromptsResource, prompt_settings, edit
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(prompt_dir, resource, instance)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 6 and all(e.passed for e in evaluations)
    template = _metadata(result, template_key("grounded_qa_system"))
    assert "[1] Billing FAQ" in template["rendered_example"]
    assert template["variables"]["sources"] == "list"
    version = _metadata(result, version_key("grounded_qa_system"))
    assert (version["mlflow_version"], version["semver"], version["new_version"]) == (
        1,
        "1.0.0",
        True,
    )
    assert version["aliases"] == {"candidate": 1}
    assert '+{% extends "base_system" %}' in version["diff"]

    store = MlflowPromptStore(prompt_settings.resolved_mlflow_tracking_uri)
    store.set_alias("grounded_qa_system", "production", 1)  # as if promoted
    edit(prompt_dir / "grounded_qa_system.jinja", "Sources:", "Sources: {{ ''.__class__.__mro__ }}")
    result = _materialize(prompt_dir, resource, instance)
    assert not result.success
    failed = {
        (e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations() if not e.passed
    }
    evaluation = failed[(template_key("grounded_qa_system"), VALID_CHECK)]
    assert "sandbox: access to private attribute '__mro__'" in evaluation.metadata["problems"].value
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert version_key("grounded_qa_system") not in materialized  # blocked by the check
    assert version_key("grounded_qa_user") in materialized
    assert [v.version for v in store.versions("grounded_qa_system")] == [1]
    served = PromptRegistry(store).render("grounded_qa_system", {"sources": []})
    assert served.version == 1 and "__mro__" not in served.text

    edit(prompt_dir / "grounded_qa_system.jinja", "Sources: {{ ''.__class__.__mro__ }}", "Sources:")
    edit(prompt_dir / "grounded_qa_system.jinja", "short, direct answer", "short answer")
    result = _materialize(prompt_dir, resource, instance)
    assert result.success
    version = _metadata(result, version_key("grounded_qa_system"))
    assert (version["mlflow_version"], version["semver"], version["bump"]) == (2, "1.1.0", "minor")
    assert "-Write a short, direct answer" in version["diff"]
    assert "## 1.1.0 (v2, minor) [candidate]" in version["changelog"]


def test_failing_prompt_test_blocks_registration(
    prompt_dir: Path, resource: PromptsResource, edit
) -> None:
    edit(prompt_dir / "grounded_qa_user.jinja", "Question: {{ question }}", "Q: {{ question }}")
    result = _materialize(prompt_dir, resource, dg.DagsterInstance.ephemeral())
    [failed] = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert (failed.asset_key, failed.check_name) == (template_key("grounded_qa_user"), TESTS_CHECK)
    assert (
        "does not contain 'Question: When are invoices sent?'" in failed.metadata["failures"].value
    )
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert version_key("grounded_qa_user") not in materialized


def test_prompt_without_test_cases_fails_both_checks(
    prompt_dir: Path, resource: PromptsResource, write_prompt
) -> None:
    write_prompt(prompt_dir, "untested", "variables: {}\n", "Hello.\n")
    result = _materialize(prompt_dir, resource, dg.DagsterInstance.ephemeral())
    failed = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == template_key("untested") and not e.passed
    }
    assert set(failed) == {VALID_CHECK, TESTS_CHECK}
    assert "declares no test cases" in failed[VALID_CHECK].metadata["problems"].value
    assert "declares no test cases" in failed[TESTS_CHECK].metadata["failures"].value
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert version_key("untested") not in materialized
    assert version_key("grounded_qa_system") in materialized


def test_sensor_requests_changed_prompts_and_their_children(
    prompt_dir: Path, resource: PromptsResource, write_prompt, edit
) -> None:
    assets, _ = build_prompt_assets([prompt_dir])
    sensor = build_prompt_sensor(prompt_names(assets))
    instance = dg.DagsterInstance.ephemeral()

    def evaluate(cursor: str | None) -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"prompts": resource}
        ) as context:
            return sensor(context)

    first = evaluate(None)
    [request] = first.run_requests
    assert len(request.asset_selection) == 6 and len(request.asset_check_keys) == 6
    cursor = json.loads(first.cursor)["files"]
    assert set(cursor) == {"base_system", "grounded_qa_system", "grounded_qa_user"}

    unchanged = evaluate(first.cursor)
    assert not unchanged.run_requests and unchanged.skip_reason
    (prompt_dir / "base_system.jinja").touch()  # touched, same content: nothing to do
    assert not evaluate(first.cursor).run_requests

    edit(prompt_dir / "base_system.jinja", "Be accurate", "Be exact")
    changed = evaluate(first.cursor)
    [request] = changed.run_requests
    assert set(request.asset_selection) == {
        template_key("base_system"),
        version_key("base_system"),
        template_key("grounded_qa_system"),
        version_key("grounded_qa_system"),
    }
    assert (
        dg.AssetCheckKey(template_key("grounded_qa_system"), VALID_CHECK)
        in request.asset_check_keys
    )
    assert json.loads(changed.cursor)["files"]["base_system"] != cursor["base_system"]

    write_prompt(prompt_dir, "brand_new", "tests: [{name: t}]\n", "New.\n")
    fresh = evaluate(changed.cursor)
    assert not fresh.run_requests and "brand_new" in fresh.skip_reason.skip_message


def test_sensor_gives_a_revert_a_new_run_key(prompt_dir: Path, resource: PromptsResource) -> None:
    """A -> B -> A -> B: each change is a run; a repeated run key would be dropped by Dagster."""
    sensor = build_prompt_sensor(prompt_names(build_prompt_assets([prompt_dir])[0]))
    instance = dg.DagsterInstance.ephemeral()
    path = prompt_dir / "grounded_qa_user.jinja"
    original = path.read_text(encoding="utf-8")
    cursor, keys = None, []
    for text in (original, original + "\nEdited.", original, original + "\nEdited."):
        path.write_text(text, encoding="utf-8")
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"prompts": resource}
        ) as context:
            result = sensor(context)
            [request] = result.run_requests
        keys.append(request.run_key)
        cursor = result.cursor
    assert len(set(keys)) == 4, keys
    assert json.loads(cursor)["runs"] == 4

    legacy = json.dumps(json.loads(cursor)["files"])  # the cursor before runs were counted
    with dg.build_sensor_context(
        instance=instance, cursor=legacy, resources={"prompts": resource}
    ) as context:
        assert not sensor(context).run_requests


def test_sensor_without_cursor_starts_from_what_was_materialized(
    prompt_dir: Path, resource: PromptsResource, edit
) -> None:
    """Switched on over a home whose prompts are registered (the first `make ui` after `make
    demo`), the sensor requests nothing; an edit made since is still requested."""
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(prompt_dir, resource, instance).success
    sensor = build_prompt_sensor(prompt_names(build_prompt_assets([prompt_dir])[0]))

    def evaluate(cursor: str | None) -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"prompts": resource}
        ) as context:
            return sensor(context)

    first = evaluate(None)
    assert not first.run_requests and first.skip_reason
    assert set(json.loads(first.cursor)["files"]) == {
        "base_system",
        "grounded_qa_system",
        "grounded_qa_user",
    }
    edit(prompt_dir / "grounded_qa_user.jinja", "Question: {{ question }}", "Question:{{question}}")
    for cursor in (first.cursor, None):
        [request] = evaluate(cursor).run_requests
        assert set(request.asset_selection) == {
            template_key("grounded_qa_user"),
            version_key("grounded_qa_user"),
        }
