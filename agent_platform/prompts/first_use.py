"""Publish a shipped prompt the first time the runtime needs it (the `local` profile's default).

A fresh home has no registered prompt versions, and the README's flow (`ingest`, then `run`) must
answer without a manual `prompts publish`. This runs the same `publish_prompt` as the
`prompts_job`: the prompt is validated and tested, registered with its semver, changes and git
commit, and gets the `candidate` alias; nothing is promoted. A file lock makes concurrent first
requests (threads or processes) register one version.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from agent_platform.prompts.publish import Publication, publish_prompt
from agent_platform.prompts.repository import PromptRepository, default_prompt_dirs
from agent_platform.prompts.store import MlflowPromptStore

logger = logging.getLogger(__name__)

Publisher = Callable[[str], Publication]


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class FirstUsePublisher:
    """Callable `name -> Publication` publishing a prompt from the prompt directories."""

    def __init__(
        self,
        store: MlflowPromptStore,
        lock_path: Path,
        *,
        prompt_dirs: Sequence[Path] | None = None,
        tokenizer_dirs: Mapping[str, Path | str] | None = None,
    ) -> None:
        self.store = store
        self.lock_path = lock_path
        self.prompt_dirs = list(prompt_dirs) if prompt_dirs is not None else None
        self.tokenizer_dirs = tokenizer_dirs
        self._lock = threading.Lock()

    def __call__(self, name: str) -> Publication:
        """Register `name` (and its ancestors) unless a version with its content exists.

        Raises:
            PromptNotFoundError: no prompt of that name in the prompt directories.
            PromptValidationError: the prompt is invalid or fails its tests.
        """
        with self._lock, _file_lock(self.lock_path):
            repo = PromptRepository.from_dirs(self.prompt_dirs or default_prompt_dirs())
            publication = publish_prompt(repo, self.store, name, self.tokenizer_dirs)
        if publication.created:
            logger.info(
                "published prompt %s on first use: %s",
                name,
                publication.version.label(),
            )
        return publication
