"""Dagster sensors and schedules: they react to changes and keep the assets fresh."""
