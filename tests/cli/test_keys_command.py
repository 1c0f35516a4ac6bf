"""Tests for ``rotator keys list|create|delete`` against the StackState emulator over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator_sandbox.stackstate import StackStateEmulator
from tests.plugins.cli import CliRunner, sandbox_config
from tests.plugins.stackstate import MutableClock

WriteConfig = Callable[[dict[str, Any]], Path]


@pytest.fixture
def config_path(stackstate: StackStateEmulator, write_config: WriteConfig) -> Path:
    """A configuration file pointing at the emulator."""
    return write_config(sandbox_config(stackstate))


class TestKeysList:
    """``keys list``."""

    def test_table_lists_both_kinds_sorted_by_name(
        self,
        run_cli: CliRunner,
        config_path: Path,
        stackstate: StackStateEmulator,
        stackstate_clock: MutableClock,
    ) -> None:
        """Without --kind both kinds print, each sorted by name, with sts-style columns."""
        expiry = stackstate_clock.now + timedelta(days=30)
        stackstate.seed_key("service-token", "zeta", expiration=expiry, roles=["r1", "r2"])
        stackstate.seed_key("service-token", "alpha", expiration=None, roles=["r1"])
        stackstate.seed_key("ingestion-api-key", "beta", expiration=expiry, description="d")
        result = run_cli("--config", str(config_path), "keys", "list")
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines[0] == "Service tokens:"
        assert [c.strip() for c in lines[1].split(" | ")] == [
            "ID",
            "NAME",
            "EXPIRATION",
            "DESCRIPTION",
            "ROLES",
        ]
        assert "alpha" in lines[2] and "never" in lines[2]
        assert "zeta" in lines[3] and f"{expiry:%Y-%m-%d}" in lines[3] and "r1, r2" in lines[3]
        assert "Ingestion API keys:" in lines
        header = result.out.split("Ingestion API keys:\n")[1].splitlines()[0]
        assert [c.strip() for c in header.split(" | ")] == [
            "ID",
            "NAME",
            "EXPIRATION",
            "DESCRIPTION",
        ]

    def test_json_has_the_stable_fields(
        self,
        run_cli: CliRunner,
        config_path: Path,
        stackstate: StackStateEmulator,
        stackstate_clock: MutableClock,
    ) -> None:
        """--output json prints the documented fields, RFC 3339 dates, roles null for ingestion."""
        expiry = datetime(2030, 1, 2, tzinfo=UTC)
        key_id, _ = stackstate.seed_key("ingestion-api-key", "ing", expiration=expiry)
        result = run_cli(
            "keys",
            "list",
            "--kind",
            "ingestion-api-key",
            "-o",
            "json",
            "--config",
            str(config_path),
        )
        assert result.code == 0, result.err
        document = json.loads(result.out)
        assert document["keys"] == [
            {
                "kind": "ingestion-api-key",
                "id": key_id,
                "name": "ing",
                "description": None,
                "expiration": "2030-01-02T00:00:00Z",
                "roles": None,
                "last_updated": document["keys"][0]["last_updated"],
            }
        ]
        assert document["keys"][0]["last_updated"].endswith("Z")

    def test_unreachable_stackstate_exits_1_with_one_line(
        self, run_cli: CliRunner, write_config: WriteConfig, stackstate: StackStateEmulator
    ) -> None:
        """A connection failure is one error line and exit code 1, not a traceback."""
        data = sandbox_config(stackstate)
        data["stackstate"]["url"] = "http://127.0.0.1:9"
        result = run_cli("--config", str(write_config(data)), "keys", "list")
        assert result.code == 1
        assert "error:" in result.err
        assert "Traceback" not in result.err


class TestKeysCreate:
    """``keys create``."""

    def test_service_token_value_printed_once_on_stdout(
        self, run_cli: CliRunner, config_path: Path, stackstate: StackStateEmulator
    ) -> None:
        """The value goes to stdout once; the warning and the logs never carry it."""
        result = run_cli(
            "--config",
            str(config_path),
            "keys",
            "create",
            "--kind",
            "service-token",
            "--name",
            "by-hand",
            "--roles",
            "stackstate-ingest-telemetry",
            "--expiration",
            "2099-01-01",
        )
        assert result.code == 0, result.err
        (value,) = [v for v in stackstate.issued_values() if v in result.out]
        assert result.out == f"Service token created: {value}\n"
        assert value not in result.err
        assert "cannot be shown again" in result.err
        (token,) = stackstate.keys("service-token")
        assert token["name"] == "by-hand"
        assert token["expiration"] == int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000)

    def test_ingestion_key_json_output_holds_the_value(
        self, run_cli: CliRunner, config_path: Path, stackstate: StackStateEmulator
    ) -> None:
        """--output json prints kind, id, name, expiration and value."""
        result = run_cli(
            "--config",
            str(config_path),
            "keys",
            "create",
            "--kind",
            "ingestion-api-key",
            "--name",
            "ing-by-hand",
            "--description",
            "made by hand",
            "-o",
            "json",
        )
        assert result.code == 0, result.err
        document = json.loads(result.out)
        assert set(document) == {"kind", "id", "name", "expiration", "value"}
        assert document["value"] in stackstate.issued_values()
        assert document["expiration"] is None
        assert document["value"] not in result.err

    @pytest.mark.parametrize(
        "args",
        [
            ["--kind", "service-token", "--name", "x"],
            ["--kind", "ingestion-api-key", "--name", "x", "--roles", "a"],
            [
                "--kind",
                "service-token",
                "--name",
                "x",
                "--roles",
                "a",
                "--expiration",
                "2001-01-01",
            ],
            [
                "--kind",
                "service-token",
                "--name",
                "x",
                "--roles",
                "a",
                "--expiration",
                "01/02/2030",
            ],
            ["--kind", "nope", "--name", "x"],
        ],
    )
    def test_usage_errors_exit_2_and_create_nothing(
        self,
        run_cli: CliRunner,
        config_path: Path,
        stackstate: StackStateEmulator,
        args: list[str],
    ) -> None:
        """Missing roles, roles on ingestion keys, past or malformed dates, bad kinds: exit 2."""
        result = run_cli("--config", str(config_path), "keys", "create", *args)
        assert result.code == 2
        assert stackstate.mutating_requests() == []


class TestKeysDelete:
    """``keys delete``."""

    def test_delete_removes_the_key(
        self, run_cli: CliRunner, config_path: Path, stackstate: StackStateEmulator
    ) -> None:
        """The key is gone after delete, exit 0."""
        key_id, _ = stackstate.seed_key("service-token", "old", expiration=None, roles=["r"])
        result = run_cli(
            "--config",
            str(config_path),
            "keys",
            "delete",
            "--kind",
            "service-token",
            "--id",
            str(key_id),
        )
        assert result.code == 0, result.err
        assert stackstate.keys("service-token") == []

    def test_unknown_id_exits_1(
        self, run_cli: CliRunner, config_path: Path, stackstate: StackStateEmulator
    ) -> None:
        """Deleting a key that does not exist is a failure (exit 1) with one readable line."""
        result = run_cli(
            "--config",
            str(config_path),
            "keys",
            "delete",
            "--kind",
            "ingestion-api-key",
            "--id",
            "12345",
        )
        assert result.code == 1
        assert "not found" in result.err.lower() or "404" in result.err


class TestSecretHygiene:
    """No value the emulator handed out reaches stderr, whatever happens."""

    def test_failures_and_listings_never_print_values(
        self,
        run_cli: CliRunner,
        config_path: Path,
        stackstate: StackStateEmulator,
    ) -> None:
        """Listing, a failed create and a failed delete print no issued value anywhere."""
        stackstate.seed_key("service-token", "seeded", expiration=None, roles=["r"])
        stackstate.fail_next("POST", r"/api/security/tokens", 500, count=10)
        outputs = [
            run_cli("--log-level", "debug", "--config", str(config_path), "keys", "list"),
            run_cli(
                "--log-level",
                "debug",
                "--config",
                str(config_path),
                "keys",
                "create",
                "--kind",
                "service-token",
                "--name",
                "n",
                "--roles",
                "r",
            ),
            run_cli(
                "--log-level",
                "debug",
                "--config",
                str(config_path),
                "keys",
                "delete",
                "--kind",
                "service-token",
                "--id",
                "1",
            ),
        ]
        secrets = [*stackstate.issued_values(), stackstate.service_token]
        for result in outputs:
            for value in secrets:
                assert value not in result.out
                assert value not in result.err
