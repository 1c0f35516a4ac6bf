"""docs/configuration.md is generated from the configuration models and kept current."""

from __future__ import annotations

from pathlib import Path

from rotator.config import RotatorConfig
from rotator.config.reference import render_reference

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
FIX = "python -m rotator.config.reference docs/configuration.md"


def test_committed_reference_is_current() -> None:
    """Regenerating the reference gives exactly the committed file."""
    assert REFERENCE.read_text(encoding="utf-8") == render_reference(), (
        f"docs/configuration.md is stale: run `{FIX}` and commit the result"
    )


def test_every_top_level_field_and_target_type_is_documented() -> None:
    """Each top-level field, target, consumer, preset and alert hook has its row or section."""
    text = render_reference()
    for name in RotatorConfig.model_fields:
        if name != "source":  # set by load_config, not by users (absent from the schema)
            assert f"| `{name}` |" in text, name
    for section in (
        "KubernetesSecretTarget",
        "VaultKvTarget",
        "FileTarget",
        "KubernetesWorkloadConsumer",
        "SyncedSecretConsumer",
        "CommandConsumer",
        "SuseObservabilityAgentPreset",
        "LinuxAgentPreset",
        "WebhookAlert",
        "Schedule",
    ):
        assert f"\n## {section}\n" in text, section
    assert '| `validity` | duration | `"90d"` |' in text
