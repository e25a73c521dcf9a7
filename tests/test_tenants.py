"""Tenant names are refused with a reason when they cannot be a partition, a path and a tenant."""

from pathlib import Path

import pytest

from agent_platform.tenants import InvalidTenantNameError, TenantRegistry, validate_tenant_name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("x" * 64, "64 characters"),
        ("Upper", "lower-case"),
        ("-lead", "starting with"),
        ("sp ace", "invalid"),
    ],
)
def test_invalid_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidTenantNameError, match=reason):
        validate_tenant_name(name)


def test_registry_round_trip_and_unknown_tenant(tmp_path: Path) -> None:
    registry = TenantRegistry(tmp_path / "tenants.json")
    source = tmp_path / "docs"
    source.mkdir()
    assert registry.register("acme", source) == source.resolve()
    assert registry.source_dir("acme") == source.resolve()
    with pytest.raises(KeyError, match="agent-platform ingest --tenant other"):
        registry.source_dir("other")
    with pytest.raises(NotADirectoryError):
        registry.register("acme", tmp_path / "missing")
    assert registry.source_dir("acme") == source.resolve()  # unchanged by the failed call
