"""Progressive delivery of agent versions: blue/green rollout with traffic steps by a stable hash
of user and session, and automatic rollback on green's live error rate or p95 latency.

Library code (no Dagster import): the gateway reads the rollout state, the CLI and the Dagster
sensor drive the controller.
"""
