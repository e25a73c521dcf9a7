"""Steps of a prompt author changing a prompt, and of reviewers and a release manager."""

from __future__ import annotations

import shutil

from behave import given, step, then, when
from behave.runner import Context
from cli import agent_platform, json_out, succeeded

from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR


def authors_copy(context: Context):
    """The prompt author's working copy of the shipped prompts."""
    target = context.workdir / "my-prompts"
    if not target.exists():
        shutil.copytree(BUILTIN_PROMPTS_DIR, target)
    return target


def aliases(name: str) -> dict[str, int]:
    listing = {p["name"]: p for p in json_out(agent_platform("prompts", "list", "--json"))}
    return listing[name]["aliases"]


@given("the shipped prompts are published")
def publish_shipped(context: Context) -> None:
    succeeded(agent_platform("prompts", "publish"))


@step('"{who}" approves "{name}" version {version:d} as "{role}"')
def approve(context: Context, who: str, name: str, version: int, role: str) -> None:
    # the local profile's development identity, checked against the committed roles file
    succeeded(agent_platform("--as", who, "prompts", "approve", name, version, "--role", role))


@step('the release manager promotes "{name}" version {version:d}')
def promote(context: Context, name: str, version: int) -> None:
    out = succeeded(agent_platform("--as", "release", "prompts", "promote", name, version)).stdout
    assert "is now production" in out, out


@when('the prompt author adds the line "{line}" to "{name}"')
def add_line(context: Context, line: str, name: str) -> None:
    path = authors_copy(context) / f"{name}.jinja"
    text = path.read_text(encoding="utf-8")
    anchor = "{% block instructions %}\n"
    assert anchor in text, path
    path.write_text(text.replace(anchor, anchor + line + "\n", 1), encoding="utf-8")
    context.changed = path


@when('the prompt author rewords "{old}" as "{new}" in "{name}"')
def reword(context: Context, old: str, new: str, name: str) -> None:
    path = authors_copy(context) / f"{name}.jinja"
    text = path.read_text(encoding="utf-8")
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    context.changed = path


@when("the prompt author validates and tests the prompts")
def validate_and_test(context: Context) -> None:
    folder = authors_copy(context)
    context.validated = agent_platform("prompts", "validate", folder)
    context.tested = agent_platform("prompts", "test", folder)


@then("validation passes and every prompt test case passes")
def all_pass(context: Context) -> None:
    assert context.validated.exit_code == 0, context.validated.output
    assert "prompt(s) valid" in context.validated.stderr
    assert context.tested.exit_code == 0, context.tested.output
    assert "PASS grounded_qa_system: numbers and cites sources" in context.tested.stdout
    assert "FAIL" not in context.tested.stdout


@then('validation fails, naming the changed file, its line and "{problem}"')
def validation_fails(context: Context, problem: str) -> None:
    result = context.validated
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if problem in line]
    assert lines, result.stdout
    path, line_number, _ = lines[0].split(":", 2)
    assert path == str(context.changed) and line_number.isdigit(), lines[0]
    assert "Traceback" not in result.output


@when("the prompt author publishes the change")
def publish_change(context: Context) -> None:
    context.published = agent_platform("prompts", "publish", authors_copy(context))


@then('the change is published as "{name}" version {version:d}, a candidate')
def published_candidate(context: Context, name: str, version: int) -> None:
    succeeded(context.published)
    assert f"{name} v{version} " in context.published.stdout, context.published.stdout
    assert aliases(name).get("candidate") == version


@then('publication is refused and "{name}" keeps only version {version:d}')
def publication_refused(context: Context, name: str, version: int) -> None:
    result = context.published
    assert result.exit_code == 1, result.output
    assert "error: " in result.stderr and "Traceback" not in result.output
    listing = {p["name"]: p for p in json_out(agent_platform("prompts", "list", "--json"))}
    assert [v["version"] for v in listing[name]["versions"]] == [version], listing[name]


@then('"{name}" version {version:d} is still production')
@then('"{name}" version {version:d} is production')
def still_production(context: Context, name: str, version: int) -> None:
    assert aliases(name).get("production") == version, aliases(name)
