"""examples/ holds one configuration per preset, each valid (``rotator check-config``), and
config.example.yaml agrees with the README where both show the same thing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.plugins.cli import CliRunner

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def preset_types() -> set[str]:
    """Every ``preset.type`` the configuration accepts (from the JSON Schema)."""
    from rotator.config import config_json_schema

    defs = config_json_schema()["$defs"]
    return {
        model["properties"]["type"]["const"]
        for name, model in defs.items()
        if name.endswith("Preset")
    }


def test_one_example_per_preset() -> None:
    """Each preset has examples/<preset>.yaml using it."""
    names = {path.stem for path in EXAMPLES}
    assert preset_types() <= names, preset_types() - names
    for path in EXAMPLES:
        if path.stem in preset_types():
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            assert {k["preset"]["type"] for k in document["keys"]} == {path.stem}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_check_config(
    run_cli: CliRunner, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rotator --config examples/X.yaml check-config`` exits 0 (credentials from the
    environment, as the comment at the top of each file shows)."""
    monkeypatch.setenv("STS_SERVICE_TOKEN", "dummy-service-token")
    result = run_cli("--config", str(path), "check-config")
    assert result.code == 0, result.err
    assert result.out.startswith(f"ok: {path}")


def test_example_config_and_readme_agree_on_windows() -> None:
    """The maintenance-window example of config.example.yaml is the README's (issue 13)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    assert '"0 2-5 * * 1-5"' in readme
    windows = [
        line.split("windows:", 1)[1].split("#", 1)[0].strip()
        for line in example.splitlines()
        if line.strip().startswith("windows:") and "[]" not in line.split("#", 1)[0]
    ]
    assert windows == ['["0 2-5 * * 1-5"]'], windows
