"""Fixtures for configuration tests: write a config file (dict or YAML text) and load it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.config import RotatorConfig, load_config
from rotator.errors import ConfigError
from rotator.secrets import reset_registry

#: A service token that looks real enough for leak checks.
TEST_SERVICE_TOKEN = "svc-0123456789abcdef-secret"

_MINIMAL: dict[str, Any] = {
    "stackstate": {"url": "https://sts.example.com", "service_token": TEST_SERVICE_TOKEN},
    "keys": [
        {
            "name": "agent",
            "kind": "service-token",
            "roles": ["stackstate-ingest-telemetry"],
            "targets": [
                {
                    "type": "kubernetes-secret",
                    "namespace": "monitoring",
                    "name": "agent-key",
                    "key": "API_KEY",
                }
            ],
        }
    ],
}


def minimal_config() -> dict[str, Any]:
    """A fresh, valid configuration with one managed key, as parsed YAML."""
    return copy.deepcopy(_MINIMAL)


ConfigLoader = Callable[..., RotatorConfig]
ConfigErrorText = Callable[..., str]


def _write(directory: Path, data: Mapping[str, Any] | str, name: str) -> Path:
    path = directory / name
    text = data if isinstance(data, str) else yaml.safe_dump(dict(data), sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def load_yaml_config(tmp_path: Path) -> ConfigLoader:
    """Write ``data`` (a dict or YAML text) to tmp_path/rotator.yaml and load it."""

    def load(
        data: Mapping[str, Any] | str,
        environ: Mapping[str, str] | None = None,
        name: str = "rotator.yaml",
    ) -> RotatorConfig:
        return load_config(_write(tmp_path, data, name), environ=environ or {})

    return load


@pytest.fixture
def config_error(tmp_path: Path) -> ConfigErrorText:
    """Write ``data`` and return the message of the ConfigError loading it raises."""

    def error(data: Mapping[str, Any] | str, environ: Mapping[str, str] | None = None) -> str:
        path = _write(tmp_path, data, "rotator.yaml")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=environ or {})
        return str(info.value)

    return error


@pytest.fixture
def clean_secret_registry() -> Iterator[None]:
    """Forget the secrets a test registered with the log redactor."""
    yield
    reset_registry()
