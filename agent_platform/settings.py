"""Resolved configuration for both deployments.

One `Settings` object decides every backend. `local` (the embedded default) keeps all state under
`AGENT_PLATFORM_HOME`; `production` points at PostgreSQL, S3-style artifacts, Weaviate, Redis and
OTLP. Switching is configuration only: environment variables (prefix `AGENT_PLATFORM_`) or one TOML
file named by `AGENT_PLATFORM_CONFIG_FILE`. A key of that file that no setting has is an error
naming the key (a typo must not silently leave the default in force).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Profile = Literal["local", "production"]
VectorBackend = Literal["embedded", "weaviate"]
Executor = Literal["in_process", "celery"]
EmbeddingBackend = Literal["torch", "onnx", "onnx-int8", "openvino"]


CONFIG_FILE_ENV = "AGENT_PLATFORM_CONFIG_FILE"
# Top-level tables of the file that other settings classes read (`RuntimeSettings`: [runtime]).
FOREIGN_TABLES = frozenset({"runtime"})


class ConfigError(ValueError):
    """The settings file is missing, not TOML, or names a key no setting has."""


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """AGENT_PLATFORM_CONFIG_FILE names a file that does not exist."""


def settings_file() -> Path | None:
    """The TOML file named by AGENT_PLATFORM_CONFIG_FILE, if any; a missing file is an error."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if not config_file:
        return None
    path = Path(config_file)
    if not path.is_file():
        raise ConfigFileNotFoundError(
            f"{CONFIG_FILE_ENV}={config_file!r}: no such settings file; "
            f"create it or unset {CONFIG_FILE_ENV}"
        )
    return path


def load_config_file(path: Path) -> dict[str, Any]:
    """The parsed settings file; a syntax error names the file, line and column."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"settings file {path} ({CONFIG_FILE_ENV}) is not valid TOML: {exc}; fix that line"
        ) from None
    except OSError as exc:
        raise ConfigError(f"settings file {path} ({CONFIG_FILE_ENV}): {exc.strerror}") from None


def check_keys(
    table: Mapping[str, Any], model: type[BaseModel], path: Path, prefix: str = ""
) -> None:
    """Refuse a key of the settings file that `model` (or its nested sections) has no field for:
    a misspelt key would otherwise be ignored silently and its default used."""
    fields = model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    if not prefix:
        known |= FOREIGN_TABLES if model is Settings else set()
    for key, value in table.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = (
                f"did you mean {prefix + close[0]!r}?"
                if close
                else f"known keys{' of ' + prefix.rstrip('.') if prefix else ''}: "
                + ", ".join(sorted(known))
            )
            raise ConfigError(
                f"settings file {path}: unknown key {prefix + key!r}; remove it or fix its "
                f"name ({hint})"
            )
        field = fields.get(key)
        section = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(section, type) and issubclass(section, BaseModel):
            check_keys(value, section, path, f"{prefix}{key}.")


class _SettingsFile(PydanticBaseSettingsSource):
    """The settings file's keys for `Settings` (its [runtime] table belongs to RuntimeSettings)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        table = load_config_file(self.path)
        check_keys(table, self.settings_cls, self.path)
        return {k: v for k, v in table.items() if k not in FOREIGN_TABLES}


class EmbeddingSettings(BaseSettings):
    """Which sentence-transformers models embed text, and how."""

    model_config = SettingsConfigDict(env_prefix="AGENT_PLATFORM_EMBEDDING_", extra="ignore")

    primary_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Model tried first. Set to all-mpnet-base-v2 where its weights are present.",
    )
    fallback_model: str = Field(
        default="all-MiniLM-L6-v2", description="Model used when the primary cannot be loaded."
    )
    model_dirs: dict[str, Path] = Field(
        default_factory=dict,
        description="Local directories holding model weights, by model name (no downloads).",
    )
    backend: EmbeddingBackend = Field(
        default="openvino",
        description=(
            "Runtime of the embedding model: a graph exported offline on first use and cached "
            "under the home (openvino, onnx, onnx-int8), or torch running the weights directly. "
            "openvino is the default by measurement (BENCHMARKS.md, 'Embedding backends': "
            "torch's recall, cosine 1.0000 to torch, less CPU per query and per passage). "
            "Changing it re-embeds."
        ),
    )
    export_dir: Path | None = Field(
        default=None,
        description=(
            "Where the exported onnx/openvino graphs are cached (unset: the home's "
            "cache/embedding-models). Keyed by the weights' digest, so homes may share one."
        ),
    )
    threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description=(
            "Intra-op threads of the embedding runtime (torch.set_num_threads, onnxruntime "
            "intra_op_num_threads, OpenVINO INFERENCE_NUM_THREADS). 0: the runtime's "
            "default, one per core. 1 (default) suits serving: one question at a time waits "
            "on a thread team for little gain (BENCHMARKS.md, 'Embedding threads'). torch's "
            "setting is process-wide."
        ),
    )
    batch_size: int = Field(default=64, ge=1, le=4096)
    chunk_tokens: int = Field(default=200, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(default=40, ge=0)
    max_document_bytes: int = Field(default=20 * 1024 * 1024, ge=1)

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> EmbeddingSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap_tokens ({self.chunk_overlap_tokens}) must be smaller than "
                f"chunk_tokens ({self.chunk_tokens})"
            )
        return self


class PromptSettings(BaseSettings):
    """How the runtime serves prompts and how validation counts their tokens."""

    model_config = SettingsConfigDict(env_prefix="AGENT_PLATFORM_PROMPTS_", extra="ignore")

    unpromoted_fallback: bool | None = Field(
        default=None,
        description=(
            "Serve `candidate`, else the newest version, of a prompt that has no `production` "
            "version yet. Unset: allowed in the `local` profile (the embedded demo answers before "
            "anyone approves anything), refused in `production`."
        ),
    )
    publish_on_first_use: bool | None = Field(
        default=None,
        description=(
            "Publish a prompt that has no registered version when a request first needs it (the "
            "same validated, tested publish as `prompts publish`). Unset: on in the `local` "
            "profile (a fresh home answers without a manual publish), off in `production`."
        ),
    )
    tokenizer_dirs: dict[str, Path] = Field(
        default_factory=dict,
        description=(
            "Local tokenizer directories (holding tokenizer.json) by model hint name, so context "
            "budgets of those models are counted exactly; others use the chars/3 estimate."
        ),
    )
    roles_file: Path | None = Field(
        default=None,
        description=(
            "The committed TOML file naming who holds which prompt review role. Unset: the "
            "project's prompts/roles.toml."
        ),
    )


class ServingSettings(BaseSettings):
    """The HTTP gateway (`agent-platform serve`): where it listens and what it bounds.

    Every limit is a bound, not a queue: a request over a limit is answered at once (413, 422,
    503 with Retry-After, 504) so a saturated worker sheds load instead of letting latency grow.
    """

    model_config = SettingsConfigDict(env_prefix="AGENT_PLATFORM_SERVING_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the server binds.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes.")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        description="Requests one worker runs at once; more are refused with 503 + Retry-After.",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Wall-clock limit of one agent request (504 above)."
    )
    graceful_shutdown_s: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long in-flight requests may take to finish before exit.",
    )
    champion_ttl_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the `champion` alias is re-read, so a promotion needs no restart.",
    )
    monitored_certificates: list[Path] = Field(
        default_factory=list,
        description="PEM certificates whose expiry /metrics reports, for the expiry alert "
        "(the gateway's own, a reverse proxy's, an mTLS client's).",
    )
    retry_after_s: int = Field(
        default=1, ge=1, description="Retry-After sent with 503 when the worker is saturated."
    )
    worker_healthcheck_timeout_s: int = Field(
        default=60,
        ge=1,
        description="With several workers, how long the supervisor waits for a worker's health "
        "ping before restarting it (uvicorn's 5 s kills workers still importing torch).",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain; with tls_key_file the gateway serves TLS."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of the cert.")
    tls_required: bool | None = Field(
        default=None,
        description="Refuse to serve without TLS. Unset: required in `production`, not locally.",
    )


class EncryptionSettings(BaseSettings):
    """Encryption at rest (see docs/data-protection.md): on by default in both profiles.

    The key-encryption key comes from `kms_url` (Vault transit; required in `production`), else
    `AGENT_PLATFORM_ENCRYPTION_KEK`, else `kek_file`, else (local only) `<home>/keys/kek.json`,
    generated on first use with mode 0600.
    """

    model_config = SettingsConfigDict(env_prefix="AGENT_PLATFORM_ENCRYPTION_", extra="ignore")

    enabled: bool = Field(default=True, description="Encrypt memory, state and request results.")
    kek: SecretStr | None = Field(
        default=None, description="Key-encryption key(s): `base64` or `1:base64,2:base64`."
    )
    kek_file: Path | None = Field(default=None, description="A key file (must exist).")
    kms_url: str | None = Field(
        default=None, description="Key service, e.g. vault-transit://vault:8200/agent-platform."
    )
    kms_token: SecretStr | None = Field(default=None, description="Token of the key service.")
    rotation_days: int = Field(default=30, ge=1, description="Age at which keys are rotated.")
    rotation_batch_size: int = Field(
        default=500, ge=1, description="Data keys re-wrapped per batch (one transaction each)."
    )
    accept_plaintext: bool = Field(
        default=False,
        description="Read values stored before encryption was on (a migration aid; else refused).",
    )


SigningAlgorithm = Literal["RS256", "PS256", "ES256"]


class AuthSettings(BaseModel):
    """Who may call: bearer JWTs from an OIDC provider (Keycloak's claim layout by default), API
    keys of service accounts, and sign-in session limits. `AGENT_PLATFORM_AUTH__<FIELD>`."""

    issuer: str | None = Field(
        default=None, description="The OIDC issuer URL; discovery reads its well-known document."
    )
    audience: str | None = Field(
        default=None, description="The `aud` a token must carry (the gateway's client id)."
    )
    required: bool | None = Field(
        default=None,
        description="Refuse requests without valid credentials. Unset: on in `production` "
        "(where it cannot be turned off), off in `local`, which then serves an anonymous caller.",
    )
    client_id: str | None = Field(
        default=None,
        description="The client whose `resource_access.<client>.roles` count (default: audience).",
    )
    allowed_clients: list[str] = Field(
        default_factory=list,
        description="When set, a token's `azp` (or `client_id`) must be one of these.",
    )
    algorithms: list[SigningAlgorithm] = Field(
        default_factory=lambda: list[SigningAlgorithm](["RS256", "PS256", "ES256"]),
        description="Accepted signature algorithms; `none` and HS* can never be configured.",
    )
    leeway_s: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat."
    )
    jwks_max_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long fetched keys are trusted; after that they must be refetched, and "
        "when the provider is unreachable, requests fail closed with 503.",
    )
    jwks_refetch_interval_s: float = Field(
        default=30.0, ge=0, description="At most one refetch per interval for an unknown `kid`."
    )
    http_timeout_s: float = Field(default=5.0, gt=0, description="Discovery and JWKS requests.")
    max_token_bytes: int = Field(default=8192, ge=512, description="Longer tokens are refused.")
    username_claim: str = "preferred_username"
    roles_claims: list[str] = Field(
        default_factory=lambda: ["realm_access.roles", "resource_access.{client}.roles"],
        description="Dotted claim paths holding role lists; `{client}` is client_id.",
    )
    groups_claim: str = "groups"
    tenants_claim: str | None = Field(
        default="tenants", description="A claim listing the caller's tenants (if present)."
    )
    tenant_group_prefix: str = Field(
        default="/tenants/",
        description="Groups under this prefix make tenant memberships (Keycloak group paths).",
    )
    session_idle_timeout_s: float = Field(
        default=8 * 3600.0, gt=0, description="A sign-in session idle longer is refused."
    )
    max_sessions: int = Field(
        default=3, ge=1, description="Concurrent sign-in sessions (`sid`) per user."
    )
    cli_client_id: str = Field(
        default="agent-platform-cli",
        description="The public client `agent-platform login` signs in with (device "
        "authorization grant); its tokens must carry the gateway's audience.",
    )


class AuthzSettings(BaseModel):
    """The Rego policy bundle every gateway route and operator action asks.
    `AGENT_PLATFORM_AUTHZ__<FIELD>`."""

    policy_dir: Path | None = Field(
        default=None, description="Directory of .rego files (default: the repository's policies/)."
    )
    decision_cache_s: float = Field(
        default=2.0, ge=0, description="How long an identical decision is reused (0: never)."
    )
    opa_url: str | None = Field(
        default=None,
        description="Ask this OPA server's Data API (the same policies/ bundle loaded there) "
        "instead of the embedded evaluator; unreachable means every decision fails closed.",
    )
    opa_timeout_s: float = Field(
        default=0.5, gt=0, description="How long one OPA decision may take before it is refused."
    )


class DeliverySettings(BaseModel):
    """Blue/green rollout of agent versions (`agent-platform deploy`): traffic steps, the live
    thresholds that roll green back, and where the controller reads metrics.
    `AGENT_PLATFORM_DELIVERY__<FIELD>`."""

    steps: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        description="Percent of traffic on green at each step; increasing, ending at 100.",
    )
    step_hold_s: float = Field(
        default=60.0, ge=0, description="How long a step stays healthy before the next one."
    )
    window_s: float = Field(
        default=60.0, gt=0, description="Sliding window of green's error rate and p95 latency."
    )
    min_requests: int = Field(
        default=50,
        ge=1,
        description="Requests green needs in the window for a verdict (errors enough to exceed "
        "the rate at this many roll back at once).",
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Green's 5xx share above which it is rolled back."
    )
    max_p95_latency_ms: float = Field(
        default=500.0, gt=0, description="Green's p95 latency above which it is rolled back."
    )
    tick_interval_s: int = Field(
        default=15, ge=1, le=300, description="How often the Dagster sensor runs the controller."
    )
    metrics_source: Literal["gateway", "prometheus"] | None = Field(
        default=None,
        description="Where green's health is read: the gateway's /metrics, or the Prometheus "
        "HTTP API (unset: prometheus in production, gateway locally).",
    )
    gateway_url: str = Field(
        default="http://127.0.0.1:8080", description="The gateway to smoke-test and scrape."
    )
    prometheus_url: str = Field(
        default="http://127.0.0.1:9090", description="Prometheus that scrapes every gateway."
    )
    postgres_url: str | None = Field(
        default=None,
        description="PostgreSQL holding the rollout state, for gateways on several hosts (unset: "
        "`postgres_url` in production, else SQLite under the home).",
    )
    postgres_schema: str = Field(
        default="agent_delivery",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Schema of the rollout state's tables in PostgreSQL.",
    )
    smoke_tenant: str | None = Field(
        default=None,
        description="Tenant whose knowledge answers the smoke requests (unset: no smoke test, "
        "recorded as not verified).",
    )
    required_approvals: list[str] = Field(
        default_factory=lambda: ["release_manager", "operations_lead", "security_team_lead"],
        description="Roles that must approve a version before it deploys, one person each.",
    )

    @model_validator(mode="after")
    def _steps_reach_everyone(self) -> DeliverySettings:
        steps = self.steps
        if not steps or steps[-1] != 100 or sorted(set(steps)) != steps:
            raise ValueError(f"delivery.steps: {steps} must increase and end at 100")
        if steps[0] <= 0:
            raise ValueError(f"delivery.steps: {steps} must start above 0")
        return self


class CelerySettings(BaseModel):
    """Where `executor = "celery"` sends Dagster steps: dagster-celery workers on a broker.
    `AGENT_PLATFORM_CELERY__<FIELD>`; workers start with `agent-platform worker`."""

    broker_url: str = Field(
        default="pyamqp://guest:guest@127.0.0.1:5672//",
        description="The Celery broker (RabbitMQ) the job's steps are queued on.",
    )
    backend: str = Field(
        default="rpc://", description="Where workers send step results back (Celery backend)."
    )
    queue: str = Field(
        default="agent-platform",
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="The queue steps are sent to and workers listen on.",
    )


class Settings(BaseSettings):
    """Every knob of the platform, resolved from the environment and an optional TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_PLATFORM_", env_nested_delimiter="__", extra="ignore"
    )

    profile: Profile = "local"
    home: Path = Field(
        default=Path(".agent_platform"),
        description="Root of all embedded state (Dagster, MLflow, indexes, caches, snapshots).",
    )
    sources_dir: Path | None = Field(
        default=None,
        description="Directory whose sub-directories are tenants' document sources (sensor input).",
    )
    dagster_home: Path | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None
    vector_backend: VectorBackend | None = None
    weaviate_url: str | None = None
    weaviate_grpc_port: int = 50051
    weaviate_api_key: str | None = None
    postgres_url: str | None = None
    redis_url: str | None = None
    executor: Executor = Field(
        default="in_process",
        description="How a job's steps run: in the process that launched the run, or on "
        "dagster-celery workers (`celery`, see `celery`).",
    )
    celery: CelerySettings = Field(default_factory=CelerySettings)
    runs_per_tenant: int = Field(
        default=1,
        ge=1,
        description="Queued runs of one tenant (its partition) that Dagster's run queue starts "
        "at once, so one tenant's big ingest cannot hold every slot.",
    )
    snapshot_retention_days: int = Field(default=30, ge=1)
    hnsw_ef_search: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="HNSW search breadth (both backends): higher raises recall and costs speed. "
        "32 measured recall@10 0.99-1.0 at 11-13x brute-force QPS on 100k vectors; see "
        "BENCHMARKS.md, 'Search'.",
    )
    serving_agent: str = Field(
        default="grounded-qa",
        description="Registered agent whose `champion` version the runtime serves by default.",
    )
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    authz: AuthzSettings = Field(default_factory=AuthzSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = settings_file()
        if path is not None:
            sources.append(_SettingsFile(settings_cls, path))
        return tuple(sources)

    @model_validator(mode="after")
    def _production_needs_services(self) -> Settings:
        if self.profile == "production":
            missing = [
                name
                for name, value in (
                    ("postgres_url", self.postgres_url),
                    ("mlflow_tracking_uri", self.mlflow_tracking_uri),
                    ("weaviate_url", self.weaviate_url),
                )
                if not value
            ]
            if missing:
                names = ", ".join(f"AGENT_PLATFORM_{m.upper()}" for m in missing)
                raise ValueError(f"profile 'production' needs {names}")
            if self.auth.required is False:
                raise ValueError(
                    "AGENT_PLATFORM_AUTH__REQUIRED: authentication cannot be turned off in "
                    "profile 'production'"
                )
        return self

    @property
    def auth_required(self) -> bool:
        """Whether every caller must authenticate (always in production)."""
        if self.auth.required is not None:
            return self.auth.required
        return self.profile == "production"

    @property
    def policy_dir(self) -> Path:
        default = Path(__file__).resolve().parents[1] / "policies"
        return (self.authz.policy_dir or default).expanduser().resolve()

    # Derived paths. Everything embedded lives under `home` unless set otherwise.
    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_dagster_home(self) -> Path:
        return (self.dagster_home or self.home_dir / "dagster").expanduser().resolve()

    @property
    def resolved_sources_dir(self) -> Path:
        return (self.sources_dir or self.home_dir / "sources").expanduser().resolve()

    @property
    def resolved_vector_backend(self) -> VectorBackend:
        if self.vector_backend:
            return self.vector_backend
        return "weaviate" if self.profile == "production" else "embedded"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def resolved_mlflow_artifact_root(self) -> str:
        if self.mlflow_artifact_root:
            return self.mlflow_artifact_root
        return (self.home_dir / "mlflow" / "artifacts").as_uri()

    @property
    def prompt_fallback_allowed(self) -> bool:
        """Whether a prompt without a `production` version may serve an unpromoted one."""
        if self.prompts.unpromoted_fallback is not None:
            return self.prompts.unpromoted_fallback
        return self.profile == "local"

    @property
    def prompt_publish_on_first_use(self) -> bool:
        """Whether the runtime publishes a prompt that has no registered version yet."""
        if self.prompts.publish_on_first_use is not None:
            return self.prompts.publish_on_first_use
        return self.profile == "local"

    @property
    def prompt_tokenizer_dirs(self) -> dict[str, Path]:
        return {m: d.expanduser().resolve() for m, d in self.prompts.tokenizer_dirs.items()}

    @property
    def index_dir(self) -> Path:
        return self.home_dir / "index"

    @property
    def snapshots_dir(self) -> Path:
        return self.home_dir / "snapshots"

    @property
    def memory_index_dir(self) -> Path:
        """Long-term memories: a store namespace of its own, beside (not inside) `index_dir`."""
        return self.home_dir / "memory-index"

    @property
    def knowledge_dir(self) -> Path:
        """Per-tenant tables (documents, chunks, embeddings) between the knowledge assets."""
        return self.home_dir / "knowledge"

    @property
    def embedding_cache_path(self) -> Path:
        return self.home_dir / "cache" / "embeddings.sqlite"

    @property
    def embedding_export_dir(self) -> Path:
        """The embedding model exported for the onnx, onnx-int8 and openvino backends."""
        return self.embedding.export_dir or self.home_dir / "cache" / "embedding-models"

    @property
    def tenant_registry_path(self) -> Path:
        return self.home_dir / "tenants.json"

    def describe(self) -> dict[str, object]:
        """The resolved view `agent-platform config show` prints (no secrets)."""
        return {
            "profile": self.profile,
            "home": str(self.home_dir),
            "dagster_home": str(self.resolved_dagster_home),
            "sources_dir": str(self.resolved_sources_dir),
            "knowledge_dir": str(self.knowledge_dir),
            "index_dir": str(self.index_dir),
            "snapshots_dir": str(self.snapshots_dir),
            "memory_index_dir": str(self.memory_index_dir),
            "snapshot_retention_days": self.snapshot_retention_days,
            "vector_backend": self.resolved_vector_backend,
            "weaviate_url": self.weaviate_url,
            "mlflow_tracking_uri": _redact(self.resolved_mlflow_tracking_uri),
            "mlflow_artifact_root": self.resolved_mlflow_artifact_root,
            "postgres_url": _redact(self.postgres_url),
            "redis_url": _redact(self.redis_url),
            "executor": self.executor,
            "celery": {**self.celery.model_dump(), "broker_url": _redact(self.celery.broker_url)},
            "runs_per_tenant": self.runs_per_tenant,
            "embedding": {
                "primary_model": self.embedding.primary_model,
                "fallback_model": self.embedding.fallback_model,
                "backend": self.embedding.backend,
                "threads": self.embedding.threads,
                "batch_size": self.embedding.batch_size,
                "chunk_tokens": self.embedding.chunk_tokens,
                "chunk_overlap_tokens": self.embedding.chunk_overlap_tokens,
            },
            "prompts": {
                "unpromoted_fallback": self.prompt_fallback_allowed,
                "publish_on_first_use": self.prompt_publish_on_first_use,
                "tokenizer_dirs": {m: str(d) for m, d in self.prompt_tokenizer_dirs.items()},
            },
            "serving": self.serving.model_dump(mode="json"),
            "encryption": self.encryption.model_dump(mode="json", exclude={"kek", "kms_token"}),
            "auth": {**self.auth.model_dump(mode="json"), "required": self.auth_required},
            "authz": {**self.authz.model_dump(mode="json"), "policy_dir": str(self.policy_dir)},
        }


def _redact(uri: str | None) -> str | None:
    """Hide a password in a connection URI."""
    if not uri or "@" not in uri or "://" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else uri


def get_settings() -> Settings:
    """Settings as the environment says now (not cached: tests and the CLI change it)."""
    return Settings()
