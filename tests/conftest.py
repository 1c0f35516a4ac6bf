"""Shared pytest set-up: every module in tests/plugins/ is a plugin (fixtures per topic)."""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.plugins.{path.stem}"
    for path in (Path(__file__).parent / "plugins").glob("*.py")
    if path.stem != "__init__"
)
