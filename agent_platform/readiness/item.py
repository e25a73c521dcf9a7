"""One checklist item and the statuses that count as done."""

from __future__ import annotations

from dataclasses import dataclass, field

OK = {"pass", "signed"}


@dataclass(frozen=True)
class Item:
    section: str
    key: str
    title: str
    status: str
    detail: str
    automatic: bool = True
    evidence: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in OK
