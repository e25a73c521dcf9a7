"""Where tenants' documents come from and where their knowledge tables live."""

from pathlib import Path

import dagster as dg

from agent_platform.knowledge.tables import TenantTables
from agent_platform.tenants import TenantRegistry, validate_tenant_name


class KnowledgeWorkspaceResource(dg.ConfigurableResource):
    """Tenant registry, the sources directory the sensor watches, and the per-tenant tables."""

    knowledge_dir: str
    registry_path: str
    sources_dir: str
    max_document_bytes: int = 20 * 1024 * 1024
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40

    @property
    def registry(self) -> TenantRegistry:
        return TenantRegistry(Path(self.registry_path))

    def tables(self, tenant: str) -> TenantTables:
        return TenantTables(Path(self.knowledge_dir), validate_tenant_name(tenant))

    def source_dir(self, tenant: str) -> Path:
        """The registered directory, else `<sources_dir>/<tenant>` (the sensor's convention),
        registered on first use so the tenant is known to `run`, `search` and `index`."""
        try:
            return self.registry.source_dir(tenant)
        except KeyError:
            fallback = Path(self.sources_dir) / tenant
            if fallback.is_dir():
                return self.registry.register(tenant, fallback)
            raise

    def discover_tenants(self) -> dict[str, Path]:
        """Registered tenants plus every sub-directory of `sources_dir` with a valid name."""
        found = dict(self.registry.tenants())
        root = Path(self.sources_dir)
        if root.is_dir():
            for child in sorted(root.iterdir()):
                if child.is_dir() and not child.name.startswith("."):
                    try:
                        found.setdefault(validate_tenant_name(child.name), child)
                    except ValueError:
                        continue
        return found
