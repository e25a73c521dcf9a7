"""Production readiness of an agent's champion: the spec's checklist, checked by tools where
possible (bandit, pip-audit, test and benchmark results, backups, gates) and by recorded sign-offs
otherwise; rendered as Markdown and HTML. Library code (no Dagster import)."""

from agent_platform.readiness.checklist import ChecklistInputs, evaluate_checklist
from agent_platform.readiness.item import Item
from agent_platform.readiness.report import ReadinessReport, build_report, write_report
from agent_platform.readiness.signoffs import MANUAL_ITEMS, Signoff, SignoffError, SignoffStore

__all__ = [
    "MANUAL_ITEMS",
    "ChecklistInputs",
    "Item",
    "ReadinessReport",
    "Signoff",
    "SignoffError",
    "SignoffStore",
    "build_report",
    "evaluate_checklist",
    "write_report",
]
