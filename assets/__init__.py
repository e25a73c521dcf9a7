"""Dagster software-defined assets. Each asset calls `agent_platform` and attaches metadata."""
