"""Steps of a release manager's rollout that goes wrong: the home, the misbehaving model server,
the gateway process and the load generator are those of the live rollout test
(tests/delivery/harness.py); the scenario drives `agent-platform deploy …` and HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from behave import given, then, when
from behave.runner import Context
from cli import agent_platform, succeeded
from serving_steps import stop_process

from tests.delivery.harness import (
    AGENT,
    REPO,
    FlakyModel,
    Load,
    gateway_env,
    prepare_home,
    start_gateway,
)

# The scenario's names for the harness's versions: blue serves, green's model misbehaves.
HARNESS_NAMES = {"blue": "blue", "green": "flaky"}
WATCH_TIMEOUT_S = 150  # the rollback comes at green's 5th call; the watch exits with it
CACHES_S = 2.5  # the gateway re-reads the rollout state and the champion alias every second


def delivery_env(context: Context, tenant: str) -> dict[str, str]:
    """Delivery settings the CLI and the controller read: this gateway, a smoke tenant, and a
    first step held long enough that only a rollback can end it within the scenario."""
    return {
        "AGENT_PLATFORM_DELIVERY__GATEWAY_URL": context.url,
        "AGENT_PLATFORM_DELIVERY__SMOKE_TENANT": tenant,
        "AGENT_PLATFORM_DELIVERY__STEP_HOLD_S": "600",
        "AGENT_PLATFORM_DELIVERY__MAX_P95_LATENCY_MS": "30000",  # a shared machine's latency
    }


def set_env(context: Context, values: dict[str, str]) -> None:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    context.cleanups.append(restore)


def version(context: Context, name: str) -> str:
    return str(context.versions[HARNESS_NAMES[name]])


@given('agent "{agent}" serves tenant "{tenant}" over HTTP with version "{name}"')
def serving(context: Context, agent: str, tenant: str, name: str) -> None:
    """An indexed tenant, the shipped prompts, blue promoted, green registered beside it, and
    `agent-platform serve` with green's (hosted, OpenAI-compatible) model on a local server."""
    assert (agent, name) == (AGENT, "blue"), "the harness registers grounded-qa with blue serving"
    context.versions = prepare_home(context.home)
    context.model = FlakyModel(fail_every=None)
    context.cleanups.append(context.model.close)
    process, context.url = start_gateway(
        context.home, context.workdir / "gateway.log", gateway_env(context.model.base_url)
    )
    context.cleanups.append(lambda: stop_process(process))
    set_env(context, delivery_env(context, tenant))


@given('version "{name}" passed its evaluation, but its model fails one call in {every:d}')
def misbehaving(context: Context, name: str, every: int) -> None:
    assert name == "green", name
    context.model.fail_every = every


@given(
    'the release manager "{manager}", the operations lead "{lead}" and the security team lead '
    '"{security}" approved version "{name}"'
)
def approved(context: Context, manager: str, lead: str, security: str, name: str) -> None:
    roles = {"release_manager": manager, "operations_lead": lead, "security_team_lead": security}
    for role, person in roles.items():
        result = succeeded(
            agent_platform(
                "--as", person, "deploy", "approve", version(context, name), "--role", role
            )
        )
        assert f"approved as {role} by {person}" in result.stdout, result.output


@given('end users keep asking agent "{agent}" questions')
def load(context: Context, agent: str) -> None:
    assert agent == AGENT, agent
    context.load = Load(context.url).__enter__()
    context.cleanups.append(lambda: context.load.__exit__(None, None, None))
    time.sleep(1)


@when('the release manager deploys version "{name}"')
def deploy(context: Context, name: str) -> None:
    context.deploy = succeeded(
        agent_platform("--as", "rita", "deploy", version(context, name), "--agent", AGENT)
    )


@then('version "{green}" serves {weight:d}% of the traffic beside version "{blue}"')
def first_step(context: Context, green: str, weight: int, blue: str) -> None:
    green, blue = version(context, green), version(context, blue)
    expected = f"v{green} deployment at {weight}% beside v{blue}"
    assert expected in context.deploy.stdout, context.deploy.output


@when("the rollout controller watches the rollout")
def watch(context: Context) -> None:
    """`agent-platform deploy watch` (the Dagster sensor's work, in a terminal): it exits when the
    rollout ends, or the scenario fails after WATCH_TIMEOUT_S with what it printed."""
    command = [sys.executable, "-m", "agent_platform.cli.main", "deploy", "watch"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    try:
        watched = subprocess.run(
            [*command, "--every", "1", "--agent", AGENT],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=WATCH_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"the rollout did not end within {WATCH_TIMEOUT_S} s "
            f"(green's model failed {context.model.failures} of {context.model.calls} calls):\n"
            f"{exc.stdout or ''}{exc.stderr or ''}"
        ) from None
    assert watched.returncode == 0, watched.stdout + watched.stderr
    context.watch_output = watched.stdout
    time.sleep(CACHES_S)
    context.after_rollback = time.time()
    time.sleep(1.5)  # some requests after the rollback
    context.load.__exit__(None, None, None)


@then('"agent-platform deploy status" says the rollout was rolled back because of its "{why}"')
def status(context: Context, why: str) -> None:
    shown = succeeded(agent_platform("deploy", "status", "--agent", AGENT)).stdout
    summary = shown.splitlines()[0]
    assert " rolled_back at 0% " in summary and why in summary, shown
    assert "rollback: rolled_back at 0%" in shown, shown  # the decision, in the event list
    assert context.model.failures >= 1, "green's model never failed"


@then('every end user is answered by version "{name}" again')
def back_on_blue(context: Context, name: str) -> None:
    late = context.load.since(context.after_rollback)
    assert late, "no request was answered after the rollback"
    seen = {(answer.status, answer.version) for answer in late}
    assert seen == {(200, version(context, name))}, seen


@then('no request went unanswered, and only requests on version "{name}" failed')
def failures_on_green(context: Context, name: str) -> None:
    answers = context.load.answers
    assert all(answer.status != 0 for answer in answers), "a request got no answer"
    failed = {(answer.status, answer.version) for answer in answers if answer.status != 200}
    assert failed == {(502, version(context, name))}, failed
