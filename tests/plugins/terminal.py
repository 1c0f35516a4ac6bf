"""No inherited terminal width in tests: text output is fitted only where a test asks for it.

pytest-xdist's workers run with ``COLUMNS=80`` and ``LINES=24`` in their environment, and the
CLI fits its tables and console logs to ``$COLUMNS`` (``rotator.cli.output``). Without this, a
test's text output would depend on whether the suite runs with ``-n``. Tests of the fitting set
``COLUMNS`` themselves (``monkeypatch.setenv``).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
