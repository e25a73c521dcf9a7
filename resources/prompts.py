"""`PromptsResource`: the prompt library behind Dagster assets, checks and the sensor."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from agent_platform.prompts import (
    MlflowPromptStore,
    Problem,
    PromptRepository,
    Publication,
    TestOutcome,
    check_prompt,
    default_prompt_dirs,
    publish_prompt,
    run_prompt_tests,
    validate_prompt,
)
from agent_platform.prompts.contract import effective_variables
from agent_platform.settings import Settings


@dataclass(frozen=True)
class TemplateSummary:
    """What the template asset shows: where it is, its hash, contract and an example render."""

    name: str
    path: str
    content_hash: str
    extends: str | None
    variables: dict[str, str]
    example: str
    example_case: str | None


class PromptsResource(dg.ConfigurableResource):
    """Prompt directories plus the MLflow store prompt versions are registered in.

    The MLflow URI comes from `Settings.resolved_mlflow_tracking_uri` and the local tokenizers
    (model hint name -> directory with tokenizer.json) from `prompts.tokenizer_dirs` (see
    `from_settings`).
    """

    prompt_dirs: list[str]
    mlflow_tracking_uri: str
    tokenizer_dirs: dict[str, str] = Field(default_factory=dict)

    _store: MlflowPromptStore | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(
        cls, settings: Settings, prompt_dirs: Sequence[Path | str] | None = None
    ) -> "PromptsResource":
        dirs = prompt_dirs if prompt_dirs is not None else default_prompt_dirs()
        return cls(
            prompt_dirs=[str(d) for d in dirs],
            mlflow_tracking_uri=settings.resolved_mlflow_tracking_uri,
            tokenizer_dirs={m: str(d) for m, d in settings.prompt_tokenizer_dirs.items()},
        )

    def store(self) -> MlflowPromptStore:
        """The MLflow store, opened on first use (not in setup: sensor ticks never need it)."""
        if self._store is None:
            self._store = MlflowPromptStore(self.mlflow_tracking_uri)
        return self._store

    def repository(self) -> PromptRepository:
        """A fresh read of the prompt directories (files change between runs)."""
        return PromptRepository.from_dirs([Path(d) for d in self.prompt_dirs])

    def summarize(self, name: str) -> TemplateSummary:
        """Hash, contract and the first test case rendered (if the prompt renders)."""
        repo = self.repository()
        prompt = repo.get(name)
        try:
            content_hash = repo.content_hash(name)
            variables = {
                k: f"{v.type}{'' if v.required else ' (optional)'}"
                for k, v in effective_variables(repo.chain(name)).items()
            }
        except (KeyError, ValueError):
            content_hash, variables = "", {}
        outcomes = run_prompt_tests(repo, name, self.tokenizer_dirs) if prompt.spec else []
        example = next((o for o in outcomes if o.rendered), None)
        return TemplateSummary(
            name,
            str(prompt.path),
            content_hash,
            prompt.spec.extends if prompt.spec else None,
            variables,
            example.rendered if example else "",
            example.case if example else None,
        )

    def validate(self, name: str) -> list[Problem]:
        return validate_prompt(self.repository(), name, self.tokenizer_dirs)

    def run_tests(self, name: str) -> list[TestOutcome]:
        return run_prompt_tests(self.repository(), name, self.tokenizer_dirs)

    def check(self, name: str) -> list[Problem]:
        return check_prompt(self.repository(), name, self.tokenizer_dirs)

    def publish(self, name: str) -> Publication:
        """Validate, test and register `name` in MLflow (no-op when its content is registered)."""
        return publish_prompt(self.repository(), self.store(), name, self.tokenizer_dirs)
