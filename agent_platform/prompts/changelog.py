"""A per-prompt changelog, generated from the version history in the registry."""

from __future__ import annotations

from collections.abc import Sequence

from agent_platform.prompts.store import StoredVersion


def render_changelog(name: str, versions: Sequence[StoredVersion]) -> str:
    """Markdown changelog, newest first: version, bump, date, commit, aliases and what changed."""
    lines = [f"# Changelog: {name}", ""]
    if not versions:
        return "\n".join([*lines, "No registered versions.", ""])
    for version in sorted(versions, key=lambda v: v.version, reverse=True):
        when = version.created_at.strftime("%Y-%m-%d %H:%M UTC")
        commit = version.tags.get("git_commit", "unknown")
        aliases = f" [{', '.join(version.aliases)}]" if version.aliases else ""
        bump = version.tags.get("bump", "?")
        lines.append(f"## {version.semver} (v{version.version}, {bump}){aliases}")
        lines.append(f"{when}, commit `{commit[:12]}`")
        lines.append("")
        lines += [f"- {change}" for change in version.changes or ["(no change list recorded)"]]
        lines.append("")
    return "\n".join(lines)
