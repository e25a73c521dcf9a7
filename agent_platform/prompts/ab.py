"""A/B variant assignment: a stable hash of the user (or session) picks control or challenger.

The same subject always gets the same variant for the same experiment (the challenger version
salts the hash, so a new experiment reshuffles). No state is stored per subject.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Variant = Literal["control", "challenger"]
AB_TRAFFIC_TAG = "ab_challenger_traffic"
_BUCKETS = 10_000


@dataclass(frozen=True)
class AbSplit:
    """Two live versions of one prompt and the share of subjects that get the challenger."""

    prompt: str
    control_version: int
    challenger_version: int
    challenger_traffic: float

    def bucket(self, subject_id: str) -> int:
        """The subject's bucket in [0, 10000), stable across processes and restarts."""
        key = f"{self.prompt}\x00{self.challenger_version}\x00{subject_id}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % _BUCKETS

    def assign(self, subject_id: str) -> tuple[Variant, int]:
        """(variant, version) for a user or session id."""
        if not subject_id:
            raise ValueError("A/B assignment needs a user or session id")
        if self.bucket(subject_id) < round(self.challenger_traffic * _BUCKETS):
            return "challenger", self.challenger_version
        return "control", self.control_version
