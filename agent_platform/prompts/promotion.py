"""Approvals, promotion to `production`, rollback and A/B splits, enforced and recorded.

A version reaches `production` (or the `challenger` side of an A/B test) only with an approval
from every role its header requires, each from a different approver. An approver is either a
verified subject (a token from the issuer) whose role the authorization policy granted, or, where
`accept_unverified` (the local profile), a development name holding the role in the committed
roles file (`ApproverRoles`). Rollback returns to the version that served before; it needs no
new approvals because that version was approved when it was promoted.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from agent_platform.prompts.ab import AB_TRAFFIC_TAG
from agent_platform.prompts.errors import PromotionRefusedError
from agent_platform.prompts.review import Approval, ReviewLog, utcnow
from agent_platform.prompts.roles import ApproverRoles
from agent_platform.prompts.store import CHALLENGER, PRODUCTION, MlflowPromptStore, StoredVersion


class PromotionService:
    """The only way aliases that serve traffic move: checks the rules, then writes and records."""

    def __init__(
        self,
        store: MlflowPromptStore,
        log: ReviewLog,
        roles: ApproverRoles,
        *,
        accept_unverified: bool = True,
    ) -> None:
        self.store = store
        self.log = log
        self.roles = roles
        self.accept_unverified = accept_unverified

    def approve(
        self,
        name: str,
        ref: str | int,
        *,
        role: str,
        by: str,
        granted_roles: Collection[str] | None = None,
    ) -> Approval:
        """Record `by`'s approval of a version in `role`, a role the version requires, and not
        a second role of this version for the same `by`.

        With `granted_roles` (the identity's roles the policy granted this approval for), `by` is
        a verified subject; without, `by` is an unverified name that must hold `role` in the
        roles file, accepted only where `accept_unverified`."""
        version = self.store.resolve(name, ref)
        required = version.required_approvals
        if role not in required:
            raise PromotionRefusedError(
                f"{version.label()} does not require role {role!r}; "
                f"required roles: {', '.join(required) or 'none'}"
            )
        by = by.strip()
        if not by:
            raise PromotionRefusedError("an approval needs the approver's identity")
        if granted_roles is not None:
            if not granted_roles:
                raise PromotionRefusedError(
                    f"the policy granted {by!r} no role that fills {role!r}; nothing to record"
                )
            approval = self.log.add_approval(
                name, version.version, role, by, verified=True, granted_roles=tuple(granted_roles)
            )
        else:
            if not self.accept_unverified:
                raise PromotionRefusedError(
                    f"approval by {by!r} is unverified; this profile accepts approvals only from "
                    "a verified identity (AGENT_PLATFORM_TOKEN or `agent-platform login`)"
                )
            self.roles.require(by, role)
            detail = {"roles_file": self.roles.source, "roles_commit": self.roles.commit}
            approval = self.log.add_approval(name, version.version, role, by, detail)
        approvers = [
            a.approver for a in self.log.approvals(name, version.version) if a.role == role
        ]
        value = json.dumps({"by": approvers, "at": approval.approved_at.isoformat()})
        self.store.set_version_tag(name, version.version, f"approval.{role}", value)
        return approval

    def missing_approvals(self, version: StoredVersion) -> list[str]:
        """Required roles not filled for this exact version by distinct approvers who hold them.

        A verified approval counts (the policy granted its role when it was given). An unverified
        one counts only where `accept_unverified`, and only while the roles file grants its
        name the role (one recorded before the grant, or after a revocation, does not). One
        approver never counts for two roles (a bipartite matching of roles to approvers decides
        which roles are filled).
        """
        candidates: dict[str, list[str]] = {role: [] for role in version.required_approvals}
        for a in self.log.approvals(version.name, version.version):
            if a.role not in candidates:
                continue
            if a.verified or (self.accept_unverified and a.role in self.roles.roles_of(a.approver)):
                candidates[a.role].append(a.approver)
        filled = _match_roles(candidates)
        return [role for role in version.required_approvals if role not in filled]

    def _require_approved(self, version: StoredVersion, target: str) -> None:
        missing = self.missing_approvals(version)
        if missing:
            raise PromotionRefusedError(
                f"cannot make {version.label()} {target}: missing approval from role(s) "
                f"{', '.join(missing)} (required: {', '.join(version.required_approvals)}); "
                f"record them with `agent-platform prompts approve {version.name} "
                f"{version.version} --role ROLE` signed in as an approver"
            )

    def promote(self, name: str, ref: str | int, *, by: str) -> StoredVersion:
        """Point `production` at a fully approved version; refused with what is missing."""
        version = self.store.resolve(name, ref)
        self._require_approved(version, PRODUCTION)
        current = self.store.by_alias(name, PRODUCTION)
        if current is not None and current.version == version.version:
            raise PromotionRefusedError(f"{version.label()} is already in production")
        self.store.set_alias(name, PRODUCTION, version.version)
        self.store.set_version_tag(name, version.version, "promoted_by", by)
        self.store.set_version_tag(name, version.version, "promoted_at", utcnow().isoformat())
        previous = current.version if current else None
        self.log.record(name, "promote", version.version, previous, by, {"semver": version.semver})
        return version

    def rollback(self, name: str, *, by: str, to: str | int | None = None) -> StoredVersion:
        """Return `production` to the version before (or `to`, one that served before).

        Rolling back also ends a running A/B test, so only the restored version serves.
        """
        current = self.store.by_alias(name, PRODUCTION)
        if current is None:
            raise PromotionRefusedError(f"prompt {name!r} has no production version to roll back")
        stack = self.log.production_stack(name)
        if to is None:
            earlier = [v for v in stack[:-1] if v != current.version]
            if not earlier:
                raise PromotionRefusedError(
                    f"prompt {name!r} has no earlier production version to roll back to"
                )
            target = self.store.get(name, earlier[-1])
        else:
            target = self.store.resolve(name, to)
            if target.version == current.version:
                raise PromotionRefusedError(f"{target.label()} is already in production")
            if target.version not in self.log.served_versions(name):
                raise PromotionRefusedError(
                    f"{target.label()} never served production before; promote it instead"
                )
        self.stop_ab(name, by=by, reason="rollback", missing_ok=True)
        self.store.set_alias(name, PRODUCTION, target.version)
        self.log.record(
            name, "rollback", target.version, current.version, by, {"semver": target.semver}
        )
        return target

    def start_ab(self, name: str, ref: str | int, *, traffic: float, by: str) -> StoredVersion:
        """Serve an approved challenger version to a `traffic` share of users next to production."""
        if not 0.0 < traffic < 1.0:
            raise PromotionRefusedError(f"A/B traffic must be between 0 and 1, got {traffic}")
        production = self.store.by_alias(name, PRODUCTION)
        if production is None:
            raise PromotionRefusedError(
                f"prompt {name!r} has no production version to test against"
            )
        challenger = self.store.resolve(name, ref)
        if challenger.version == production.version:
            raise PromotionRefusedError(f"{challenger.label()} is already the production version")
        self._require_approved(challenger, "an A/B challenger")
        self.store.set_alias(name, CHALLENGER, challenger.version)
        self.store.set_prompt_tag(name, AB_TRAFFIC_TAG, str(traffic))
        detail = {"traffic": traffic, "control": production.version}
        self.log.record(name, "ab_start", challenger.version, production.version, by, detail)
        return challenger

    def stop_ab(self, name: str, *, by: str, reason: str = "", missing_ok: bool = False) -> None:
        """End the A/B test: only `production` serves again."""
        challenger = self.store.by_alias(name, CHALLENGER)
        if challenger is None:
            if missing_ok:
                return
            raise PromotionRefusedError(f"prompt {name!r} has no A/B test running")
        self.store.delete_alias(name, CHALLENGER)
        self.store.delete_prompt_tag(name, AB_TRAFFIC_TAG)
        self.log.record(name, "ab_stop", challenger.version, None, by, {"reason": reason})


def _match_roles(candidates: dict[str, list[str]]) -> dict[str, str]:
    """Role -> approver, one approver per role at most, as many roles as possible (augmenting
    paths; the role lists are tiny)."""
    holder: dict[str, str] = {}  # approver -> role

    def assign(role: str, seen: set[str]) -> bool:
        for approver in candidates[role]:
            if approver in seen:
                continue
            seen.add(approver)
            if approver not in holder or assign(holder[approver], seen):
                holder[approver] = role
                return True
        return False

    for role in candidates:
        assign(role, set())
    return {role: approver for approver, role in holder.items()}
