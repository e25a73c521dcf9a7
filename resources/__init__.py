"""Dagster resources: one per backing service, each a thin wrapper over `agent_platform`."""
