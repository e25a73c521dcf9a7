"""`agent-platform login` against the real OIDC provider (device authorization grant), and an
approval by the verified identity it stores: the subject and the role the policy granted."""

from __future__ import annotations

import html
import json
import os
import re
import stat
import subprocess
import sys

import httpx
from typer.testing import CliRunner

from agent_platform.cli.main import app
from agent_platform.prompts import MlflowPromptStore, PromptRepository, ReviewLog, publish_prompt
from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR
from tests.security.conftest import AUDIENCE, REPO, OidcProvider

_FORM = re.compile(r"<form[^>]*?action=\"([^\"]+)\"[^>]*>(.*?)</form>", re.S)
_INPUT = re.compile(r"<input\b[^>]*>", re.S)
_ATTR = re.compile(r"(name|value)=\"([^\"]*)\"")


def _first_form(page: str) -> tuple[str, dict[str, str]]:
    found = _FORM.search(page)
    assert found, page[-500:]
    fields = {}
    for tag in _INPUT.findall(found.group(2)):
        attrs = dict(_ATTR.findall(tag))
        if "name" in attrs:
            fields[attrs["name"]] = html.unescape(attrs.get("value", ""))
    return html.unescape(found.group(1)), fields


def sign_in_in_a_browser(url: str, username: str) -> None:
    """What the person does at the URL the CLI shows: confirm the code, sign in, consent (the
    provider's own pages, submitted as a browser would)."""
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(url)
        for _ in range(8):
            if "Sign-in Success" in page.text:
                return
            action, fields = _first_form(page.text)
            if fields.get("prompt") == "login":
                fields |= {"login": username, "password": "any"}
            page = browser.post(str(page.url.join(action)), data=fields)
        raise AssertionError(f"sign-in did not finish: {page.text[-500:]}")


def test_login_stores_a_verified_token_that_approvals_record(
    oidc: OidcProvider, mlflow_settings, monkeypatch
) -> None:
    home = mlflow_settings.home_dir
    env = {"AGENT_PLATFORM_AUTH__ISSUER": oidc.url, "AGENT_PLATFORM_AUTH__AUDIENCE": AUDIENCE}
    environment = {**os.environ, **env, "AGENT_PLATFORM_HOME": str(home), "PYTHONPATH": str(REPO)}
    environment.pop("AGENT_PLATFORM_TOKEN", None)
    login = subprocess.Popen(
        [sys.executable, "-m", "agent_platform.cli.main", "login"],
        env=environment, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert login.stderr is not None
        shown, seen = None, []
        while shown is None and len(seen) < 50:  # skip any warning printed before the prompt
            seen.append(login.stderr.readline())
            shown = re.search(r"open (\S+) and enter the code (\S+)", seen[-1])
            if not seen[-1]:
                break
        assert shown, "".join(seen)
        sign_in_in_a_browser(shown.group(1), "sam")
        out, err = login.communicate(timeout=120)
    finally:
        if login.poll() is None:  # a failed sign-in must not leave the CLI polling
            login.kill()
            login.wait(timeout=10)
    assert login.returncode == 0, err
    assert out.strip() == "signed in as sam (sam; security_architect)"
    token_file = home / "auth" / "token.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AGENT_PLATFORM_TOKEN", raising=False)
    runner = CliRunner()
    who = json.loads(runner.invoke(app, ["auth", "whoami"]).stdout)
    assert (who["subject"], who["verified"], who["issuer"]) == ("sam", True, oidc.url)

    repo = PromptRepository.from_dirs([BUILTIN_PROMPTS_DIR])
    store = MlflowPromptStore(mlflow_settings.resolved_mlflow_tracking_uri)
    for name in ("base_system", "grounded_qa_system"):
        publish_prompt(repo, store, name)
    approved = runner.invoke(
        app, ["prompts", "approve", "grounded_qa_system", "1", "--role", "safety"]
    )
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.strip() == (
        "approved grounded_qa_system v1 as safety by sam (verified, granted by security_architect)"
    )
    refused = runner.invoke(
        app, ["prompts", "approve", "grounded_qa_system", "1", "--role", "prompt-owner"]
    )
    assert refused.exit_code == 1
    assert (
        "missing permission prompts.approve (granted by roles: lead_architect, product_owner)"
        in (refused.stderr)
    )
    [approval] = ReviewLog.under(home).approvals("grounded_qa_system", 1)
    assert (approval.approver, approval.verified, approval.granted_roles) == (
        "sam", True, ("security_architect",),
    )  # fmt: skip

    token_file.chmod(0o644)  # a token others can read is refused, not used
    leaked = runner.invoke(app, ["auth", "whoami"])
    assert leaked.exit_code == 1 and "readable by others" in leaked.stderr
    assert runner.invoke(app, ["logout"]).stdout.strip() == "signed out"
