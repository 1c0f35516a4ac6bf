"""Fixtures to run the ``rotator`` CLI in-process, exactly as the console script does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from rotator.cli import main
from rotator_sandbox.stackstate import StackStateEmulator


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one CLI invocation."""

    code: int
    out: str
    err: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Iterator[CliRunner]:
    """Run ``rotator ARGS...`` through ``rotator.cli.main``; returns code, stdout, stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run
    structlog.reset_defaults()


def sandbox_config(emulator: StackStateEmulator, **extra: Any) -> dict[str, Any]:
    """A configuration pointing at a StackState emulator, with one managed key."""
    data: dict[str, Any] = {
        "stackstate": {
            "url": emulator.url,
            "allow_insecure_http": True,
            "service_token": emulator.service_token,
            "timeout": "5s",
        },
        "keys": [
            {
                "name": "agent",
                "kind": "service-token",
                "roles": ["stackstate-ingest-telemetry"],
                "targets": [{"type": "file", "path": "/tmp/rotator-unused-token"}],
            }
        ],
    }
    data.update(extra)
    return data


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a configuration dict to tmp_path/rotator.yaml and return its path."""

    def write(data: dict[str, Any]) -> Path:
        path = tmp_path / "rotator.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
