"""The prompt repository: the `*.jinja` files of one or more directories, by prompt name."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

from agent_platform.prompts.errors import Problem, PromptNotFoundError, problem
from agent_platform.prompts.spec import PROMPT_SUFFIX, PromptFile, read_prompt_file

PROMPTS_DIR_ENV = "AGENT_PLATFORM_PROMPTS_DIR"
BUILTIN_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


def default_prompt_dirs() -> list[Path]:
    """The project's `prompts/` plus the user directories in `AGENT_PLATFORM_PROMPTS_DIR`.

    `AGENT_PLATFORM_PROMPTS_DIR` takes an `os.pathsep`-separated list; user prompts may extend the
    built-in ones but not reuse their names.
    """
    dirs = [BUILTIN_PROMPTS_DIR] if BUILTIN_PROMPTS_DIR.is_dir() else []
    extra = os.environ.get(PROMPTS_DIR_ENV, "")
    dirs += [Path(p).expanduser().resolve() for p in extra.split(os.pathsep) if p.strip()]
    return dirs


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_paths(dirs: Iterable[Path]) -> list[Path]:
    """Every prompt file under `dirs`, sorted, so scans are deterministic."""
    found: list[Path] = []
    for directory in dirs:
        if Path(directory).is_dir():
            found += sorted(Path(directory).rglob(f"*{PROMPT_SUFFIX}"))
    return found


def file_hashes(dirs: Iterable[Path]) -> dict[str, str]:
    """Content hash of every prompt file by prompt name: the sensor's cursor."""
    hashes: dict[str, str] = {}
    for path in prompt_paths(dirs):
        hashes[path.name.removesuffix(PROMPT_SUFFIX)] = hashlib.sha256(
            path.read_bytes()
        ).hexdigest()
    return hashes


class PromptRepository:
    """Prompt files by name, with their inheritance chains resolved on demand."""

    def __init__(self, files: Sequence[PromptFile], problems: Sequence[Problem] = ()) -> None:
        self._files: dict[str, PromptFile] = {}
        self._problems = list(problems)
        for prompt in files:
            if prompt.name in self._files:
                first = self._files[prompt.name].path
                self._problems.append(
                    problem(prompt.path, 1, f"prompt {prompt.name!r} is already defined in {first}")
                )
                continue
            self._files[prompt.name] = prompt

    @classmethod
    def from_dirs(cls, dirs: Iterable[Path | str]) -> PromptRepository:
        """Read every prompt file in `dirs` (a missing directory is a problem, not a crash)."""
        paths = [Path(d) for d in dirs]
        missing = [
            problem(d, 1, "prompt directory does not exist") for d in paths if not d.is_dir()
        ]
        return cls([read_prompt_file(p) for p in prompt_paths(paths)], missing)

    @property
    def problems(self) -> list[Problem]:
        """Repository-level problems: missing directories, duplicate names."""
        return list(self._problems)

    def names(self) -> list[str]:
        return sorted(self._files)

    def get(self, name: str) -> PromptFile:
        try:
            return self._files[name]
        except KeyError:
            raise PromptNotFoundError(f"no prompt named {name!r} in the repository") from None

    def __contains__(self, name: object) -> bool:
        return name in self._files

    @cached_property
    def sources(self) -> dict[str, str]:
        """Template source by name: what the sandboxed loader serves to `{% extends %}`."""
        return {name: f.source for name, f in self._files.items()}

    def chain(self, name: str) -> list[PromptFile]:
        """`name` and its ancestors, root first; raises `PromptNotFoundError` or `ValueError`."""
        chain: list[PromptFile] = []
        seen: list[str] = []
        current: str | None = name
        while current is not None:
            if current in seen:
                cycle = " -> ".join([*seen, current])
                raise ValueError(f"inheritance cycle: {cycle}")
            seen.append(current)
            if current not in self._files:
                child = seen[-2] if len(seen) > 1 else None
                where = f" (parent of {child!r})" if child else ""
                raise PromptNotFoundError(f"unknown prompt {current!r}{where}")
            prompt = self._files[current]
            chain.insert(0, prompt)
            current = prompt.spec.extends if prompt.spec else None
        return chain

    def descendants(self, name: str) -> list[str]:
        """Prompts that extend `name`, directly or not: they change when it changes."""
        result: list[str] = []
        for other in self.names():
            if other == name:
                continue
            try:
                chain = self.chain(other)
            except (PromptNotFoundError, ValueError):
                continue
            if any(p.name == name for p in chain[:-1]):
                result.append(other)
        return result

    def content_hash(self, name: str) -> str:
        """Hash of the prompt's own source and its ancestors': what its version identifies."""
        digest = ""
        for prompt in self.chain(name):
            digest = sha256_text(f"{digest}\n{prompt.name}\n{prompt.source}")
        return digest
