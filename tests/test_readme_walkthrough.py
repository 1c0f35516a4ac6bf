"""The README's sandbox walkthrough works when pasted (issue 13, item 8).

The block is run as written by ``bash`` in an empty directory, except its first two lines (create
and activate the virtualenv, ``pip install``): the test runs inside the virtualenv ``make test``
made, whose ``bin`` is put first on ``PATH`` — exactly what activating it does. Whoever changes
the block changes what this test runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP_LINES = ("python3 -m venv .venv && . .venv/bin/activate", "pip install ")


def walkthrough() -> list[str]:
    """The lines of the first ``sh`` block under "Try it against the sandbox"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Try it against the sandbox", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_walkthrough_starts_by_activating_the_virtualenv() -> None:
    """A new user's shell has no ``rotator``: the block creates and activates the venv first,
    installs both distributions, and ends by stopping the sandbox."""
    lines = walkthrough()
    assert lines[0].startswith(SETUP_LINES[0])
    assert lines[1].startswith(SETUP_LINES[1]) and "-e ./sandbox" in lines[1]
    assert lines[-1].startswith("kill %1")


@pytest.mark.timeout(180)
def test_walkthrough_runs(tmp_path: Path) -> None:
    """Every other line runs as pasted: the sandbox starts, a rotation happens, status reads it,
    and ``kill %1`` stops the sandbox (bash returns, leaving no process behind)."""
    lines = [line for line in walkthrough() if not line.startswith(SETUP_LINES)]
    if shutil.which("kubectl") is None:
        lines = [line for line in lines if not line.startswith("kubectl ")]
    script = "set -euo pipefail\n" + "\n".join(lines) + "\nwait\n"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("COLUMNS", None)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 managed key: 1 planned (dry-run: nothing was changed)" in result.stdout
    assert "1 managed key: 1 rotated" in result.stdout
    assert (tmp_path / "sandbox-out" / "rotator.yaml").is_file()
    assert "sandbox stopped" in (tmp_path / "sandbox.log").read_text(encoding="utf-8")
