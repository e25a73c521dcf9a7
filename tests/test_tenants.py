"""Tenant names are refused with a reason when they cannot be a partition, a path and a tenant."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent_platform.tenants import (
    InvalidTenantNameError,
    SourceDirectoryConflictError,
    TenantRegistry,
    UnknownTenantError,
    validate_tenant_name,
)


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


def test_registry_keeps_a_tenants_directory_unless_told_to_change_it(tmp_path: Path) -> None:
    registry = TenantRegistry(tmp_path / "tenants.json")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    registry.register("acme", first)
    assert registry.register("acme", first) == first.resolve()  # the same directory: fine
    with pytest.raises(SourceDirectoryConflictError, match=str(first.resolve())):
        registry.register("acme", second)
    assert registry.source_dir("acme") == first.resolve()
    assert registry.register("acme", second, change=True) == second.resolve()
    assert registry.source_dir("acme") == second.resolve()
    assert registry.require("acme") == "acme"
    with pytest.raises(UnknownTenantError, match="agent-platform ingest --tenant ghost DIR"):
        registry.require("ghost")


def test_concurrent_registrations_lose_none(tmp_path: Path) -> None:
    """Read-modify-write of the JSON file happens under a lock."""
    source = tmp_path / "docs"
    source.mkdir()
    path = tmp_path / "tenants.json"
    registry = TenantRegistry(path)
    names = [f"t{n}" for n in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda name: TenantRegistry(path).register(name, source), names))
    assert sorted(registry.tenants()) == sorted(names)
