"""Who may approve prompts in which role: a roles file kept under version control.

Approvers are not authenticated yet (`--by` is a name anyone can type), so the roles a name holds
come from a reviewed, committed file (`prompts/roles.toml`) instead of from the person approving.
A grant then goes through the same review as code, and each approval records the commit of the
roles file it was checked against. A file with uncommitted changes, or outside git, is refused:
editing it locally would otherwise be a way to grant yourself a role.
"""

from __future__ import annotations

import re
import subprocess  # nosec B404  # fixed argument lists, never a shell
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent_platform.prompts.errors import PromotionRefusedError, PromptError

ROLES_FILE_NAME = "roles.toml"
DEFAULT_ROLES_FILE = Path(__file__).resolve().parents[2] / "prompts" / ROLES_FILE_NAME
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


class RolesFileError(PromptError):
    """The roles file is missing, malformed or not committed to version control."""


class ApproverRoles(BaseModel):
    """Approver name -> the review roles that name holds, as the roles file declares them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: dict[str, list[str]] = Field(default_factory=dict)
    source: str = Field(default="", description="Where the grants came from (the file's path).")
    commit: str | None = Field(default=None, description="The roles file's git commit.")

    @field_validator("approvers")
    @classmethod
    def _valid_names(cls, approvers: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, roles in approvers.items():
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"approver name {name!r} must be letters, digits and . _ @ + - (no spaces)"
                )
            for role in roles:
                if not _ROLE.fullmatch(role):
                    raise ValueError(
                        f"role {role!r} of approver {name!r} must be lower-case letters, "
                        "digits, - and _"
                    )
        return {name: sorted(set(roles)) for name, roles in approvers.items()}

    def roles_of(self, approver: str) -> list[str]:
        return list(self.approvers.get(approver, []))

    def require(self, approver: str, role: str) -> None:
        """Refuse (one line) unless `approver` holds `role` in the roles file."""
        if approver not in self.approvers:
            raise PromotionRefusedError(
                f"approver {approver!r} is not in the roles file {self.source or '(inline)'}; "
                "add them there through a reviewed commit"
            )
        held = self.approvers[approver]
        if role not in held:
            raise PromotionRefusedError(
                f"approver {approver!r} does not hold role {role!r} in the roles file "
                f"{self.source or '(inline)'} (holds: {', '.join(held) or 'none'})"
            )


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # nosec B603 B607  # fixed argument list, no shell; no user input in it; the operator's git on PATH, fixed arguments
        ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10
    )


def committed_revision(path: Path) -> str:
    """The HEAD commit of the checkout holding `path`; refuses a file git does not track or
    that has uncommitted changes (staged or not)."""
    directory, name = path.parent, path.name
    try:
        tracked = _git(directory, "ls-files", "--error-unmatch", "--", name)
        if tracked.returncode != 0:
            raise RolesFileError(
                f"roles file {path} is not under version control; commit it to git so role "
                "grants are reviewed"
            )
        if _git(directory, "diff", "--quiet", "HEAD", "--", name).returncode != 0:
            raise RolesFileError(
                f"roles file {path} has uncommitted changes; commit them (role grants must be "
                "reviewed) or revert them"
            )
        return _git(directory, "rev-parse", "HEAD").stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise RolesFileError(f"roles file {path}: cannot check it with git: {exc}") from exc


def parse_roles(data: Mapping[str, object], source: str, commit: str | None) -> ApproverRoles:
    """Validate the roles file's TOML table; the first problem becomes a one-line error."""
    try:
        return ApproverRoles.model_validate({**data, "source": source, "commit": commit})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RolesFileError(f"roles file {source}: {where}: {first['msg']}") from None


def load_roles(path: Path, *, require_committed: bool = True) -> ApproverRoles:
    """Read and validate the roles file at `path`, refusing it unless committed to git."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise RolesFileError(
            f"roles file {path} does not exist; create it with an [approvers] table "
            '(name = ["role", ...]) and commit it'
        )
    commit = committed_revision(path) if require_committed else None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RolesFileError(f"roles file {path} is not valid TOML: {exc}") from None
    return parse_roles(data, str(path), commit)
