"""Semantic versions derived from content, by rule.

- major: the variable contract breaks (a required variable added, a variable removed or
  retyped, an optional variable made required);
- minor: the prompt text changes, an optional variable is added (or one becomes optional), or
  an optional variable's default changes (it is rendered text);
- patch: only whitespace or comments (the metadata header is a comment) changed.

A prompt's text includes its ancestors', so a parent's change gives its children new versions too.
"""

from __future__ import annotations

import difflib
import re
import subprocess  # nosec B404  # fixed argument lists, never a shell
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent_platform.prompts.repository import sha256_text

Bump = Literal["major", "minor", "patch"]
FIRST_VERSION = "1.0.0"
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class VersionFacts:
    """What a version's bump is computed from; stored as MLflow tags on every version."""

    content_hash: str
    text_fingerprint: str
    contract: Mapping[str, Mapping[str, Any]]


def text_fingerprint(sources: Sequence[str]) -> str:
    """Hash of the prompt text (chain, root first) without comments and with whitespace folded."""
    folded = [_WHITESPACE.sub(" ", _COMMENT.sub("", s)).strip() for s in sources]
    return sha256_text("\n\x00".join(folded))


def classify_change(old: VersionFacts, new: VersionFacts) -> tuple[Bump, list[str]]:
    """The bump from `old` to `new` and a list of human-readable changes (for the changelog)."""
    major: list[str] = []
    minor: list[str] = []
    for name in sorted(set(old.contract) | set(new.contract)):
        before, after = old.contract.get(name), new.contract.get(name)
        if before is None and after is not None:
            kind = "required" if after["required"] else "optional"
            (major if after["required"] else minor).append(f"variable {name!r} added ({kind})")
        elif before is not None and after is None:
            major.append(f"variable {name!r} removed")
        elif before is not None and after is not None:
            if before["type"] != after["type"]:
                major.append(f"variable {name!r} retyped {before['type']} -> {after['type']}")
            if not before["required"] and after["required"]:
                major.append(f"variable {name!r} is now required")
            if before["required"] and not after["required"]:
                minor.append(f"variable {name!r} is now optional")
            was, now = before.get("default"), after.get("default")  # JSON text; None: absent
            if was is not None and now is not None and was != now:
                minor.append(f"variable {name!r} default changed {was} -> {now}")
    if old.text_fingerprint != new.text_fingerprint:
        minor.append("prompt text changed")
    if major:
        return "major", major + minor
    if minor:
        return "minor", minor
    return "patch", ["whitespace, comments or metadata changed"]


def bump_version(previous: str | None, bump: Bump) -> str:
    """The next semantic version after `previous` (None: the first version, 1.0.0)."""
    if previous is None:
        return FIRST_VERSION
    major, minor, patch = (int(part) for part in previous.split("."))
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def git_commit(path: Path) -> str | None:
    """HEAD commit of the git checkout holding `path`, `-dirty` if the file has local changes."""
    directory = path.parent if path.is_file() or path.suffix else path
    try:
        head = subprocess.run(  # nosec B603 B607  # fixed argument list, no shell; no user input in it; the operator's git on PATH, fixed arguments
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(  # nosec B603 B607  # fixed argument list, no shell; no user input in it; the operator's git on PATH, fixed arguments
            ["git", "-C", str(directory), "status", "--porcelain", "--", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if status else head or None


def unified_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """A unified diff of two template sources ('' when equal)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )
