"""Settings: the embedded default, the production profile and the one-file switch."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from agent_platform.settings import EmbeddingSettings, Settings


def test_local_profile_keeps_all_state_under_home(platform_home: Path) -> None:
    settings = Settings()
    assert settings.profile == "local"
    assert settings.resolved_vector_backend == "embedded"
    for path in (settings.resolved_dagster_home, settings.index_dir, settings.snapshots_dir):
        assert path.is_relative_to(platform_home)
    assert settings.resolved_mlflow_tracking_uri == f"sqlite:///{platform_home}/mlflow/mlflow.db"


def test_production_profile_names_missing_services(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_PLATFORM_PROFILE", "production")
    monkeypatch.setenv("AGENT_PLATFORM_POSTGRES_URL", "postgresql://u:pw@db/agents")
    with pytest.raises(ValidationError, match="AGENT_PLATFORM_WEAVIATE_URL"):
        Settings()


def test_production_switch_from_one_toml_file(
    platform_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "production.toml"
    config.write_text(
        'profile = "production"\n'
        'postgres_url = "postgresql://agent:s3cret@db:5432/agents"\n'
        'mlflow_tracking_uri = "postgresql://agent:s3cret@db:5432/mlflow"\n'
        'mlflow_artifact_root = "s3://agent-artifacts/mlflow"\n'
        'weaviate_url = "http://weaviate:8080"\n'
        "[embedding]\nbatch_size = 128\n"
    )
    monkeypatch.setenv("AGENT_PLATFORM_CONFIG_FILE", str(config))
    from agent_platform.cli.main import app

    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["profile"] == "production"
    assert shown["vector_backend"] == "weaviate"
    assert shown["embedding"]["batch_size"] == 128
    assert "s3cret" not in result.stdout
    assert shown["postgres_url"] == "postgresql://agent:***@db:5432/agents"


def test_missing_settings_file_is_named(platform_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGENT_PLATFORM_CONFIG_FILE", "/nonexistent/agent.toml")
    with pytest.raises(FileNotFoundError, match=r"/nonexistent/agent\.toml"):
        Settings()


def test_chunk_overlap_must_be_smaller_than_chunk() -> None:
    with pytest.raises(ValidationError, match="chunk_overlap_tokens"):
        EmbeddingSettings(chunk_tokens=50, chunk_overlap_tokens=50)


def test_prompt_fallback_follows_the_profile_unless_set(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().prompt_fallback_allowed  # local: the demo answers before any approval
    services = {
        "postgres_url": "postgresql://u@db/agents",
        "mlflow_tracking_uri": "postgresql://u@db/mlflow",
        "weaviate_url": "http://weaviate:8080",
    }
    assert not Settings(profile="production", **services).prompt_fallback_allowed
    monkeypatch.setenv("AGENT_PLATFORM_PROMPTS__UNPROMOTED_FALLBACK", "true")
    monkeypatch.setenv("AGENT_PLATFORM_PROMPTS__TOKENIZER_DIRS", '{"minilm": "~/tok"}')
    production = Settings(profile="production", **services)
    assert production.prompt_fallback_allowed
    assert production.prompt_tokenizer_dirs == {"minilm": Path("~/tok").expanduser().resolve()}
    assert production.describe()["prompts"] == {
        "unpromoted_fallback": True,
        "publish_on_first_use": False,
        "tokenizer_dirs": {"minilm": str(Path("~/tok").expanduser().resolve())},
    }


def test_hnsw_search_breadth_is_a_setting(
    platform_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_platform.vectorstore.factory import open_vector_store

    monkeypatch.setenv("AGENT_PLATFORM_HNSW_EF_SEARCH", "96")
    store = open_vector_store(Settings())
    try:
        assert store.params.ef_search == 96
    finally:
        store.close()
    monkeypatch.setenv("AGENT_PLATFORM_HNSW_EF_SEARCH", "0")
    with pytest.raises(ValidationError, match="hnsw_ef_search"):
        Settings()
