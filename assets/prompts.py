"""Prompt templates and their registered MLflow versions, one pair of assets per prompt.

One asset per prompt rather than one partition per prompt: `{% extends %}` becomes lineage (a
child's version depends on its parent's version, so a parent is registered first in the same
run), each prompt keeps its own checks and history in the UI, and the sensor can request one run
for a parent and all its children. Prompts live in git, so a new prompt file arrives with a code
deploy, and the code location reload that comes with it creates its assets.
"""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from agent_platform.prompts import (
    PromptRepository,
    default_prompt_dirs,
    file_hashes,
    render_changelog,
)
from resources.prompts import PromptsResource

GROUP = "prompts"
VALID_CHECK, TESTS_CHECK = "prompt_valid", "prompt_tests_pass"


TEMPLATE_SUFFIX, VERSION_SUFFIX = "_template", "_version"


def template_key(name: str) -> dg.AssetKey:
    """`prompts/<name>_template`: the leaf differs from the version's, as the graph shows leaves."""
    return dg.AssetKey(["prompts", f"{name}{TEMPLATE_SUFFIX}"])


def version_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["prompts", f"{name}{VERSION_SUFFIX}"])


def _file_sha256(prompts: PromptsResource, name: str) -> str:
    """The prompt file's content hash, as the sensor computes it (its baseline without a cursor)."""
    return file_hashes([Path(d) for d in prompts.prompt_dirs]).get(name, "")


def _md_code(text: str, lang: str = "") -> dg.MetadataValue:
    fence = "````" if "```" in text else "```"
    return dg.MetadataValue.md(f"{fence}{lang}\n{text}\n{fence}")


def _template_asset(name: str, parent: str | None, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=template_key(name),
        group_name=GROUP,
        kinds={"jinja"},
        deps=[template_key(parent)] if parent else [],
        description=description or f"Jinja2 prompt template {name!r}.",
    )
    def _template(prompts: PromptsResource) -> dg.MaterializeResult:
        summary = prompts.summarize(name)
        example = summary.example or "(no test case renders)"
        return dg.MaterializeResult(
            data_version=dg.DataVersion(summary.content_hash or "invalid"),
            metadata={
                "path": dg.MetadataValue.path(summary.path),
                "content_hash": summary.content_hash,
                "file_sha256": _file_sha256(prompts, name),
                "extends": summary.extends or "",
                "variables": dg.MetadataValue.json(summary.variables),
                "example_case": summary.example_case or "",
                "rendered_example": _md_code(example),
            },
        )

    return _template


def _checks(name: str) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=template_key(name),
        name=VALID_CHECK,
        blocking=True,
        description="Syntax, variables vs declarations, inheritance, sandbox and context budget.",
    )
    def _valid(prompts: PromptsResource) -> dg.AssetCheckResult:
        problems = prompts.validate(name)
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(p.message for p in problems[:3]) or "valid",
            metadata={
                "problem_count": len(problems),
                "problems": _md_code("\n".join(str(p) for p in problems) or "none"),
            },
        )

    @dg.asset_check(
        asset=template_key(name),
        name=TESTS_CHECK,
        blocking=True,
        description="Every test case in the header renders and its assertions hold.",
    )
    def _tests(prompts: PromptsResource) -> dg.AssetCheckResult:
        outcomes = prompts.run_tests(name)
        failed = [f"{o.case}: {f}" for o in outcomes for f in o.failures]
        return dg.AssetCheckResult(
            passed=not failed,  # a prompt without test cases has a failed outcome saying so
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(failed[:3]) or "passed",
            metadata={
                "tests": len(outcomes),
                "failed": len(failed),
                "failures": _md_code("\n".join(failed) or "none"),
            },
        )

    return [_valid, _tests]


def _version_asset(name: str, parent: str | None) -> dg.AssetsDefinition:
    @dg.asset(
        key=version_key(name),
        group_name=GROUP,
        kinds={"jinja", "mlflow"},
        deps=[template_key(name), *([version_key(parent)] if parent else [])],
        description=f"Versions of prompt {name!r} in MLflow's prompt registry (alias candidate).",
    )
    def _version(
        context: dg.AssetExecutionContext, prompts: PromptsResource
    ) -> dg.MaterializeResult:
        publication = prompts.publish(name)
        version = publication.version
        if publication.created:
            context.log.info(f"registered {version.label()} ({publication.bump})")
        history = prompts.store().versions(name)
        return dg.MaterializeResult(
            data_version=dg.DataVersion(version.content_hash),
            metadata={
                "mlflow_version": version.version,
                "semver": version.semver,
                "new_version": publication.created,
                "bump": publication.bump or "unchanged",
                "changes": dg.MetadataValue.json(publication.changes),
                "content_hash": version.content_hash,
                "git_commit": version.tags.get("git_commit", "unknown"),
                "uri": f"prompts:/{name}/{version.version}",
                "aliases": dg.MetadataValue.json(prompts.store().aliases(name)),
                "diff": _md_code(publication.diff or "(no change to this file)", "diff"),
                "changelog": dg.MetadataValue.md(render_changelog(name, history)),
            },
        )

    return _version


def build_prompt_assets(
    prompt_dirs: Sequence[Path | str],
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """Template and version assets, and their blocking checks, for every prompt in `prompt_dirs`."""
    repo = PromptRepository.from_dirs([Path(d) for d in prompt_dirs])
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    for name in repo.names():
        spec = repo.get(name).spec
        parent = spec.extends if spec and spec.extends in repo else None
        assets += [
            _template_asset(name, parent, spec.description if spec else ""),
            _version_asset(name, parent),
        ]
        checks += _checks(name)
    return assets, checks


def prompt_names(assets: Sequence[dg.AssetsDefinition]) -> list[str]:
    """Names of the prompts that `assets` were built for (from their template keys)."""
    return sorted(
        key.path[-1].removesuffix(TEMPLATE_SUFFIX)
        for a in assets
        for key in a.keys
        if key.path[0] == "prompts" and key.path[-1].endswith(TEMPLATE_SUFFIX)
    )


prompt_assets, prompt_asset_checks = build_prompt_assets(default_prompt_dirs())
