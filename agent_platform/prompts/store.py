"""Prompt versions in MLflow's prompt registry: the Jinja source as the template, facts as tags.

Tags on every version: `semver`, `content_hash`, `git_commit`, `bump`, `changes`, `contract`,
`text_fingerprint`, `parent`/`parent_version` (the registered version of the parent it was built
against), `required_approvals`, and one `approval.<role>` per recorded approval. Aliases:
`candidate` (newest registered), `production` and, during an A/B test, `challenger`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from agent_platform.prompts.errors import PromptNotFoundError
from agent_platform.prompts.versioning import VersionFacts

CANDIDATE, PRODUCTION, CHALLENGER = "candidate", "production", "challenger"
KNOWN_ALIASES = (CANDIDATE, PRODUCTION, CHALLENGER)
MLFLOW_TAG_PREFIX = "mlflow."


@dataclass(frozen=True)
class StoredVersion:
    """One registered prompt version, as read back from MLflow."""

    name: str
    version: int
    template: str
    tags: dict[str, str]
    created_at: datetime
    message: str = ""
    aliases: list[str] = field(default_factory=list)

    @property
    def semver(self) -> str:
        return self.tags.get("semver", "0.0.0")

    @property
    def content_hash(self) -> str:
        return self.tags.get("content_hash", "")

    @property
    def parent(self) -> tuple[str, int] | None:
        """(parent name, parent's registered version) when this prompt extends another."""
        if not self.tags.get("parent"):
            return None
        return self.tags["parent"], int(self.tags["parent_version"])

    @property
    def required_approvals(self) -> list[str]:
        approvals: list[str] = json.loads(self.tags.get("required_approvals", "[]"))
        return approvals

    @property
    def changes(self) -> list[str]:
        changes: list[str] = json.loads(self.tags.get("changes", "[]"))
        return changes

    def facts(self) -> VersionFacts:
        return VersionFacts(
            self.content_hash,
            self.tags.get("text_fingerprint", ""),
            json.loads(self.tags.get("contract", "{}")),
        )

    def label(self) -> str:
        return f"{self.name} v{self.version} ({self.semver})"


def _is_missing(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


class MlflowPromptStore:
    """Reads and writes prompt versions and aliases through one `MlflowClient`."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _to_stored(self, pv: Any, aliases: list[str] | None = None) -> StoredVersion:
        tags = {k: v for k, v in (pv.tags or {}).items() if not k.startswith(MLFLOW_TAG_PREFIX)}
        created = datetime.fromtimestamp((pv.creation_timestamp or 0) / 1000, tz=UTC)
        return StoredVersion(
            pv.name,
            int(pv.version),
            pv.template,
            tags,
            created,
            pv.commit_message or "",
            sorted(aliases if aliases is not None else (pv.aliases or [])),
        )

    def register(
        self, name: str, template: str, tags: dict[str, str], message: str
    ) -> StoredVersion:
        """Create a new version (and the prompt on first use)."""
        pv = self._client.register_prompt(
            name=name, template=template, commit_message=message, tags=tags
        )
        return self._to_stored(pv, [])

    def names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            page = self._client.search_prompts(max_results=100, page_token=token)
            names += [p.name for p in page]
            token = page.token
            if not token:
                return sorted(names)

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version for the aliases this platform uses."""
        found: dict[str, int] = {}
        for alias in KNOWN_ALIASES:
            pv = self._load(f"prompts:/{name}@{alias}")
            if pv is not None:
                found[alias] = int(pv.version)
        return found

    def versions(self, name: str) -> list[StoredVersion]:
        """Every version of `name`, oldest first, with its aliases; [] for an unknown prompt."""
        try:
            found = list(self._client.search_prompt_versions(name, max_results=1000))
        except MlflowException as exc:
            if _is_missing(exc):
                return []
            raise
        by_version: dict[int, list[str]] = {}
        for alias, version in self.aliases(name).items():
            by_version.setdefault(version, []).append(alias)
        stored = [self._to_stored(pv, by_version.get(int(pv.version), [])) for pv in found]
        return sorted(stored, key=lambda v: v.version)

    def latest(self, name: str) -> StoredVersion | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def _load(self, uri: str) -> Any:
        try:
            return self._client.load_prompt(uri, allow_missing=True, cache_ttl_seconds=0)
        except MlflowException as exc:
            if _is_missing(exc):
                return None
            raise

    def get(self, name: str, version: int) -> StoredVersion:
        pv = self._load(f"prompts:/{name}/{int(version)}")
        if pv is None:
            raise PromptNotFoundError(f"prompt {name!r} has no version {version}")
        return self._to_stored(pv)

    def by_alias(self, name: str, alias: str) -> StoredVersion | None:
        pv = self._load(f"prompts:/{name}@{alias}")
        return self._to_stored(pv) if pv is not None else None

    def resolve(self, name: str, ref: str | int) -> StoredVersion:
        """A version by number (`3`), semver (`1.2.0`) or alias (`production`)."""
        ref = str(ref)
        if ref.isdigit():
            return self.get(name, int(ref))
        if ref.count(".") == 2:
            for version in self.versions(name):
                if version.semver == ref:
                    return version
            raise PromptNotFoundError(f"prompt {name!r} has no version {ref}")
        found = self.by_alias(name, ref)
        if found is None:
            raise PromptNotFoundError(f"prompt {name!r} has no alias {ref!r}")
        return found

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._client.set_prompt_alias(name=name, alias=alias, version=int(version))

    def delete_alias(self, name: str, alias: str) -> None:
        try:
            self._client.delete_prompt_alias(name=name, alias=alias)
        except MlflowException as exc:
            if not _is_missing(exc):
                raise

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._client.set_prompt_version_tag(name=name, version=str(version), key=key, value=value)

    def prompt_tags(self, name: str) -> dict[str, str]:
        prompt = self._client.get_prompt(name)
        if prompt is None:
            raise PromptNotFoundError(f"no registered prompt named {name!r}")
        return dict(prompt.tags or {})

    def set_prompt_tag(self, name: str, key: str, value: str) -> None:
        self._client.set_prompt_tag(name=name, key=key, value=value)

    def delete_prompt_tag(self, name: str, key: str) -> None:
        self._client.delete_prompt_tag(name=name, key=key)
