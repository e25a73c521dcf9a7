"""Semantic versions by rule, computed from real edits of real prompt files."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_platform.prompts import PromptRepository
from agent_platform.prompts.publish import version_facts
from agent_platform.prompts.versioning import bump_version, classify_change

HEADER = """\
description: v1
variables:
  who: {type: str}
  mood: {type: str, required: false, default: calm}
tests:
  - name: t
    inputs: {who: Ada}
"""
BODY = "Hello {{ who }}, stay {{ mood }}.\n"


@pytest.fixture
def greeting(tmp_path: Path, write_prompt) -> Path:
    return write_prompt(tmp_path, "greeting", HEADER, BODY)


def _bump(path: Path, old: str, new: str) -> tuple[str, list[str]]:
    before = version_facts(PromptRepository.from_dirs([path.parent]), path.stem)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    after = version_facts(PromptRepository.from_dirs([path.parent]), path.stem)
    assert before.content_hash != after.content_hash
    return classify_change(before, after)


@pytest.mark.parametrize(
    ("old", "new", "bump", "change"),
    [
        ("stay {{ mood }}.", "stay   {{ mood }}.\n\n", "patch", "whitespace"),
        ("Hello {{ who }}", "{# greet #}Hello {{ who }}", "patch", "comments"),
        ("description: v1", "description: v2", "patch", "metadata"),
        ("stay {{ mood }}.", "remain {{ mood }}.", "minor", "prompt text changed"),
        (
            "  mood: {type: str, required: false, default: calm}",
            "  mood: {type: str, required: false, default: calm}\n"
            "  tone: {type: str, required: false}",
            "minor",
            "variable 'tone' added (optional)",
        ),
        (
            "  mood: {type: str, required: false, default: calm}",
            "  mood: {type: str, required: false, default: calm}\n  place: {type: str}",
            "major",
            "variable 'place' added (required)",
        ),
        (
            "  mood: {type: str, required: false, default: calm}\n",
            "",
            "major",
            "variable 'mood' removed",
        ),
        ("who: {type: str}", "who: {type: any}", "major", "variable 'who' retyped str -> any"),
        (
            "mood: {type: str, required: false, default: calm}",
            "mood: {type: str}",
            "major",
            "variable 'mood' is now required",
        ),
        ("who: {type: str}", "who: {type: str, required: false}", "minor", "now optional"),
        (
            "mood: {type: str, required: false, default: calm}",
            "mood: {type: str, required: false, default: cheerful}",
            "minor",
            'variable \'mood\' default changed "calm" -> "cheerful"',
        ),
    ],
)
def test_bump_rules(greeting: Path, old: str, new: str, bump: str, change: str) -> None:
    found_bump, changes = _bump(greeting, old, new)
    assert found_bump == bump
    assert any(change in c for c in changes), changes


def test_parent_text_change_is_a_minor_change_of_the_child(prompt_dir: Path, edit) -> None:
    repo = PromptRepository.from_dirs([prompt_dir])
    before = version_facts(repo, "grounded_qa_system")
    edit(prompt_dir / "base_system.jinja", "Be accurate", "Be exact")
    after = version_facts(PromptRepository.from_dirs([prompt_dir]), "grounded_qa_system")
    assert classify_change(before, after) == ("minor", ["prompt text changed"])


@pytest.mark.parametrize(
    ("previous", "bump", "expected"),
    [
        (None, "major", "1.0.0"),
        ("1.2.3", "patch", "1.2.4"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "major", "2.0.0"),
    ],
)
def test_bump_version(previous: str | None, bump: str, expected: str) -> None:
    assert bump_version(previous, bump) == expected  # type: ignore[arg-type]
