"""Manual sign-offs of readiness items that no tool can check (security review, dashboards, …).

Kept in `<home>/readiness/signoffs.json`: item → who signed, when, and a note. Signing again
replaces the entry; an unknown item is refused with the list of manual items.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

MANUAL_ITEMS: dict[str, str] = {
    "architecture.security_review": "Security review of the architecture",
    "implementation.code_review": "Code review of the release",
    "operations.dashboards": "Dashboards for latency, errors, cost and quality",
    "operations.incident_procedures": "Incident procedures and on-call rota",
}


class SignoffError(ValueError):
    """An unknown item or an empty signer."""


@dataclass(frozen=True)
class Signoff:
    """`by` is the signer's verified subject (or, in the local profile, an unverified
    development name); `roles` are the roles the policy granted `readiness.signoff` for."""

    item: str
    by: str
    at: str
    note: str = ""
    verified: bool = False
    roles: tuple[str, ...] = ()


class SignoffStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def under(cls, home_dir: Path) -> SignoffStore:
        return cls(home_dir / "readiness" / "signoffs.json")

    def all(self) -> dict[str, Signoff]:
        if not self.path.is_file():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {
            item: Signoff(**{**entry, "roles": tuple(entry.get("roles", ()))})
            for item, entry in data.items()
        }

    def get(self, item: str) -> Signoff | None:
        return self.all().get(item)

    def sign(
        self,
        item: str,
        *,
        by: str,
        note: str = "",
        verified: bool = False,
        roles: tuple[str, ...] = (),
    ) -> Signoff:
        if item not in MANUAL_ITEMS:
            raise SignoffError(
                f"{item!r} is not a manual readiness item; sign one of {sorted(MANUAL_ITEMS)}"
            )
        if not by.strip():
            raise SignoffError("who signs off must be named")
        entries = {k: asdict(v) for k, v in self.all().items()}
        at = datetime.now(UTC).isoformat(timespec="seconds")
        signoff = Signoff(item, by.strip(), at, note, verified, tuple(roles))
        entries[item] = asdict(signoff)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=2, sort_keys=True)
        Path(tmp).replace(self.path)
        return signoff
