"""`agent-platform prompts …`: validate, test, publish, review, promote and roll back prompts.

Output contract (kept stable for scripts):
- `validate`: one `path:line: message` line per problem on stdout, exit status 1 if any.
- `test`: one `PASS|FAIL prompt: case[: reason]` line per test case, exit status 1 on a failure.
- `list --json`: [{"name", "versions": [{"version", "semver", "created_at", "aliases"}],
  "aliases": {alias: version}}].
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from agent_platform.cli.auth import audit_done, authorize_cli
from agent_platform.prompts import (
    MlflowPromptStore,
    PromotionService,
    PromptError,
    PromptRepository,
    ReviewLog,
    default_prompt_dirs,
    render_changelog,
    run_prompt_tests,
    validate_prompt,
)
from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR
from agent_platform.prompts.roles import DEFAULT_ROLES_FILE, ApproverRoles, load_roles
from agent_platform.prompts.versioning import classify_change, unified_diff
from agent_platform.settings import get_settings

prompts_app = typer.Typer(
    help="Versioned, validated, tested Jinja2 prompts registered in MLflow.",
    no_args_is_help=True,
)
F = TypeVar("F", bound=Callable[..., Any])
DirsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Prompt directories (default: the project's prompts/ and user dirs)."),
]


def _fails_cleanly(func: F) -> F:
    """Turn a `PromptError` into `error: …` on stderr and exit status 1 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PromptError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


def _repository(dirs: list[Path] | None) -> tuple[PromptRepository, list[str]]:
    """The repository to check and the names to report: DIRs' prompts, able to extend built-ins."""
    if not dirs:
        repo = PromptRepository.from_dirs(default_prompt_dirs())
        return repo, repo.names()
    own = PromptRepository.from_dirs(dirs)
    builtin = [BUILTIN_PROMPTS_DIR] if BUILTIN_PROMPTS_DIR.is_dir() else []
    extra = [d for d in builtin if all(d.resolve() != p.resolve() for p in dirs)]
    # DIRs first: their prompts win over a built-in of the same name (whose duplicate is ignored)
    return PromptRepository.from_dirs([*dirs, *extra]), own.names()


def _store() -> MlflowPromptStore:
    return MlflowPromptStore(get_settings().resolved_mlflow_tracking_uri)


def _promotions(*, checks_roles: bool = True) -> PromotionService:
    """The promotion service. Verified approvals carry the roles the policy granted; in the
    local profile, unverified (`--as NAME`) approvals are checked against the committed roles
    file, which production never reads: there only verified approvals count. Rollback and
    ending an A/B test need no approvals and so do not read it either."""
    settings = get_settings()
    local = settings.profile != "production"
    roles = (
        load_roles(settings.prompts.roles_file or DEFAULT_ROLES_FILE)
        if checks_roles and local
        else ApproverRoles()
    )
    return PromotionService(
        _store(), ReviewLog.under(settings.home_dir), roles, accept_unverified=local
    )


@prompts_app.command("validate")
def validate(dirs: DirsArg = None) -> None:
    """Check syntax, variables, inheritance, sandbox safety, test cases and context budgets
    (counted with the tokenizers of setting `prompts.tokenizer_dirs` where configured)."""
    repo, names = _repository(dirs)
    problems = [p for p in repo.problems if not dirs or any(str(d) in p.path for d in dirs)]
    tokenizers = get_settings().prompt_tokenizer_dirs
    for name in names:
        problems += validate_prompt(repo, name, tokenizers)
    for found in problems:
        typer.echo(str(found))
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {len(names)} prompt(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{len(names)} prompt(s) valid", err=True)


@prompts_app.command("test")
def test(dirs: DirsArg = None) -> None:
    """Render every test case of every prompt and check its assertions."""
    repo, names = _repository(dirs)
    failed = 0
    tokenizers = get_settings().prompt_tokenizer_dirs
    for name in names:
        for outcome in run_prompt_tests(repo, name, tokenizers):
            if outcome.passed:
                typer.echo(f"PASS {name}: {outcome.case} ({outcome.tokens} tokens)")
            for failure in outcome.failures:
                failed += 1
                typer.echo(f"FAIL {name}: {outcome.case}: {failure}")
    if failed:
        raise typer.Exit(1)


@prompts_app.command("publish")
def publish(dirs: DirsArg = None) -> None:
    """Validate, test and register changed prompts in MLflow (alias `candidate`).

    Runs the Dagster `prompts_job` in process, exactly what the UI materializes. Without DIRs the
    prompts are the project's `prompts/` plus `AGENT_PLATFORM_PROMPTS_DIR`.
    """
    from agent_platform.cli.execution import run_job

    prompt_dirs = None
    if dirs:
        builtin = [BUILTIN_PROMPTS_DIR] if BUILTIN_PROMPTS_DIR.is_dir() else []
        ours = {d.resolve() for d in dirs}
        prompt_dirs = [*dirs, *(d for d in builtin if d.resolve() not in ours)]
    outcome = run_job(get_settings(), "prompts_job", prompt_dirs=prompt_dirs)
    for key, meta in sorted(outcome.metadata.items()):
        if key.startswith("prompts/") and key.endswith("_version"):  # prompts/<name>_version
            name = key.removeprefix("prompts/").removesuffix("_version")
            state = f"new ({meta['bump']})" if meta.get("new_version") else "unchanged"
            typer.echo(f"{name} v{meta['mlflow_version']} ({meta['semver']}): {state}")
    for failure in outcome.failures:
        typer.echo(f"error: {failure}", err=True)
    if not outcome.success:
        raise typer.Exit(1)


@prompts_app.command("list")
def list_prompts(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered prompts with their versions and aliases."""
    store = _store()
    listing: list[dict[str, Any]] = []
    for name in store.names():
        versions = store.versions(name)
        listing.append(
            {
                "name": name,
                "versions": [
                    {
                        "version": v.version,
                        "semver": v.semver,
                        "created_at": v.created_at.isoformat(),
                        "aliases": v.aliases,
                    }
                    for v in versions
                ],
                "aliases": store.aliases(name),
            }
        )
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    for item in listing:
        aliases = ", ".join(f"{a}=v{v}" for a, v in item["aliases"].items()) or "no aliases"
        typer.echo(f"{item['name']}: {len(item['versions'])} version(s); {aliases}")


@prompts_app.command("diff")
@_fails_cleanly
def diff(name: str, v1: str, v2: str) -> None:
    """Unified diff and semver classification between two versions (number, semver or alias)."""
    store = _store()
    old, new = store.resolve(name, v1), store.resolve(name, v2)
    if old.version == new.version or (old.content_hash and old.content_hash == new.content_hash):
        same = "the same version" if old.version == new.version else "the same content"
        typer.echo(f"# {old.label()} -> {new.label()}: identical ({same}); no changes")
        return
    bump, changes = classify_change(old.facts(), new.facts())
    typer.echo(f"# {old.label()} -> {new.label()}: {bump}; " + "; ".join(changes))
    typer.echo(unified_diff(old.template, new.template, old.label(), new.label()), nl=False)


@prompts_app.command("changelog")
@_fails_cleanly
def changelog(name: str) -> None:
    """The prompt's changelog, generated from its registered versions."""
    typer.echo(render_changelog(name, _store().versions(name)))


@prompts_app.command("approve")
@_fails_cleanly
def approve(
    name: str,
    version: str,
    role: Annotated[str, typer.Option("--role", help="The approver role this approval fills.")],
) -> None:
    """Approve a version in one of the roles it requires, as the signed-in identity.

    A verified identity (AGENT_PLATFORM_TOKEN or `agent-platform login`) approves when the policy
    grants it `prompts.approve` for that review role; its subject and the granting roles are
    recorded. In the local profile an unverified `--as NAME` approves when NAME holds the role in
    the committed roles file, recorded as unverified. One approver fills one role of a version."""
    resource = {"name": f"prompt:{name}@{version}", "review_role": role}
    identity, decision = authorize_cli("prompts.approve", resource)
    granted = decision.roles if identity.verified else None
    approval = _promotions(checks_roles=not identity.verified).approve(
        name, version, role=role, by=identity.actor, granted_roles=granted
    )
    audit_done(
        identity, "prompt.approve", "prompts.approve", resource["name"], review_role=role,
        granted_roles=list(approval.granted_roles), verified=approval.verified,
    )  # fmt: skip
    how = (
        f"verified, granted by {', '.join(approval.granted_roles)}"
        if approval.verified
        else "unverified development identity, roles file"
    )
    typer.echo(f"approved {name} v{approval.version} as {role} by {identity.actor} ({how})")


@prompts_app.command("promote")
@_fails_cleanly
def promote(name: str, version: str) -> None:
    """Point `production` at a version; refused unless every required role approved it."""
    identity, _ = authorize_cli("prompts.promote", f"prompt:{name}@{version}")
    promoted = _promotions().promote(name, version, by=identity.actor)
    typer.echo(f"{promoted.label()} is now production")


@prompts_app.command("rollback")
@_fails_cleanly
def rollback(
    name: str,
    to: Annotated[str | None, typer.Option("--to", help="An earlier production version.")] = None,
) -> None:
    """Return `production` to the version that served before (ends any A/B test)."""
    identity, _ = authorize_cli("prompts.rollback", f"prompt:{name}")
    restored = _promotions(checks_roles=False).rollback(name, by=identity.actor, to=to)
    typer.echo(f"rolled back: {restored.label()} is now production")


@prompts_app.command("ab-start")
@_fails_cleanly
def ab_start(
    name: str,
    version: str,
    traffic: Annotated[float, typer.Option(help="Share of users (0-1) given the challenger.")],
) -> None:
    """Serve an approved challenger version to a share of users next to production (a release:
    the policy's `prompts.promote`)."""
    identity, _ = authorize_cli("prompts.promote", f"prompt:{name}@{version}")
    challenger = _promotions().start_ab(name, version, traffic=traffic, by=identity.actor)
    typer.echo(f"A/B test: {challenger.label()} serves {traffic:.0%} of users")


@prompts_app.command("ab-stop")
@_fails_cleanly
def ab_stop(name: str) -> None:
    """End the A/B test of a prompt: only production serves (the policy's `prompts.rollback`)."""
    identity, _ = authorize_cli("prompts.rollback", f"prompt:{name}")
    _promotions(checks_roles=False).stop_ab(name, by=identity.actor, reason="stopped")
    typer.echo(f"A/B test of {name} stopped")


@prompts_app.command("history")
@_fails_cleanly
def history(name: str) -> None:
    """The audit log of a prompt: approvals, promotions, rollbacks, A/B tests."""
    for event in ReviewLog.under(get_settings().home_dir).events(name):
        previous = f" (was v{event.previous_version})" if event.previous_version else ""
        detail = json.dumps(event.detail) if event.detail else ""
        typer.echo(
            f"{event.at.isoformat()} {event.action} v{event.version}{previous} "
            f"by {event.actor} {detail}".rstrip()
        )
