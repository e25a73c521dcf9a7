"""The tamper-evident audit log: who did what, to what, with what outcome, in a hash chain."""

from agent_platform.audit.chain import AuditEvent, AuditRecord, AuditVerification, verify_chain
from agent_platform.audit.store import (
    AuditLog,
    AuditLogError,
    PostgresAuditLog,
    SQLiteAuditLog,
    open_audit_log,
)

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditLogError",
    "AuditRecord",
    "AuditVerification",
    "PostgresAuditLog",
    "SQLiteAuditLog",
    "open_audit_log",
    "verify_chain",
]
