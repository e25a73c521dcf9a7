"""Tenants are dynamic partitions: a sensor or `agent-platform ingest` adds them."""

import dagster as dg

tenants_partitions = dg.DynamicPartitionsDefinition(name="tenants")
