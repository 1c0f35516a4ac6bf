"""Tests for ``rotator check-config``, ``rotator config schema`` and config file resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.plugins.cli import CliRunner
from tests.plugins.config import TEST_SERVICE_TOKEN, minimal_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def write(path: Path, data: object) -> Path:
    """Dump ``data`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class TestCheckConfig:
    """``check-config``."""

    def test_valid_config_prints_ok_and_one_line_per_key(
        self, run_cli: CliRunner, tmp_path: Path
    ) -> None:
        """A valid file: exit 0, ``ok`` and a summary line per managed key."""
        path = write(tmp_path / "rotator.yaml", minimal_config())
        result = run_cli("check-config", "--config", str(path))
        assert result.code == 0, result.err
        assert result.out.startswith("ok: ")
        assert "agent: service-token, validity 90d" in result.out

    def test_example_config_is_valid(
        self, run_cli: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """config.example.yaml passes check-config with its documented variables set."""
        for name in (
            "STS_SERVICE_TOKEN",
            "WEBHOOK_SECRET",
            "SLACK_WEBHOOK_URL",
            "PAGERDUTY_ROUTING_KEY",
            "VAULT_TOKEN",
        ):
            monkeypatch.setenv(name, "https://hooks.example.com/x" if "URL" in name else "v-123456")
        result = run_cli("--config", str(EXAMPLE), "check-config")
        assert result.code == 0, result.err

    @pytest.mark.parametrize(
        ("mutate", "field"),
        [
            (lambda d: d["keys"][0]["targets"][0].pop("namespace"), "keys[0].targets[0].namespace"),
            (lambda d: d["keys"][0].pop("roles"), "keys[0].roles"),
            (lambda d: d["stackstate"].update(url="http://sts.example.com"), "stackstate.url"),
            (lambda d: d["keys"].append(dict(d["keys"][0])), "keys[1].name"),
            (lambda d: d["keys"][0].update(rotate_before="100d"), "keys[0].rotate_before"),
            (
                lambda d: d["keys"][0]["targets"].append(
                    {"type": "vault-kv", "path": "p", "key": "k"}
                ),
                "keys[0].targets[1]",
            ),
            (lambda d: d["keys"][0].update(validty="90d"), "keys[0].validty"),
        ],
    )
    def test_invalid_config_exits_2_naming_the_field(
        self, run_cli: CliRunner, tmp_path: Path, mutate: object, field: str
    ) -> None:
        """Each invalid case: exit 2, the file and the field path named, no traceback, no secret."""
        data = minimal_config()
        mutate(data)  # type: ignore[operator]
        path = write(tmp_path / "rotator.yaml", data)
        result = run_cli("--config", str(path), "check-config")
        assert result.code == 2
        assert str(path) in result.err
        assert field in result.err
        assert "Traceback" not in result.err
        assert TEST_SERVICE_TOKEN not in result.err

    def test_missing_file_exits_2(self, run_cli: CliRunner, tmp_path: Path) -> None:
        """A configuration file that does not exist is a config error naming it."""
        result = run_cli("--config", str(tmp_path / "nope.yaml"), "check-config")
        assert result.code == 2
        assert "nope.yaml" in result.err

    def test_environment_variable_names_the_file(
        self, run_cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without --config, $ROTATOR_CONFIG is used."""
        path = write(tmp_path / "from-env.yaml", minimal_config())
        monkeypatch.setenv("ROTATOR_CONFIG", str(path))
        result = run_cli("check-config")
        assert result.code == 0, result.err
        assert "from-env.yaml" in result.out

    def test_default_file_in_working_directory(
        self, run_cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without --config or $ROTATOR_CONFIG, ./rotator.yaml is read."""
        write(tmp_path / "rotator.yaml", minimal_config())
        monkeypatch.delenv("ROTATOR_CONFIG", raising=False)
        monkeypatch.chdir(tmp_path)
        assert run_cli("check-config").code == 0


class TestConfigSchema:
    """``config schema``."""

    def test_schema_is_json_describing_the_top_level_sections(self, run_cli: CliRunner) -> None:
        """The schema is valid JSON with the contract's sections."""
        result = run_cli("config", "schema")
        assert result.code == 0
        schema = json.loads(result.out)
        assert {"stackstate", "keys", "defaults", "alerts"} <= set(schema["properties"])


class TestUsage:
    """Usage errors."""

    def test_unknown_command_exits_2(self, run_cli: CliRunner) -> None:
        """An unknown command is a usage error."""
        assert run_cli("frobnicate").code == 2

    def test_help_exits_0(self, run_cli: CliRunner) -> None:
        """--help lists the commands."""
        result = run_cli("--help")
        assert result.code == 0
        assert "keys" in result.out and "check-config" in result.out
