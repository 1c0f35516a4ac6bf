"""Render the Helm chart under deploy/helm with Helm's own Go SDK (``helm-python-sdk``).

``helm_python`` binds to ``libhelm_c``, Helm's Go SDK behind a C ABI, so the templates are
rendered by the same engine as ``helm template``/``helm install``; no helm binary and no cluster
are involved (``lookup`` returns nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "stackstate-key-rotator"
#: The alert rules' one source, and the copy the chart embeds with ``.Files.Get``.
RULES_SOURCE = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
RULES_COPY = CHART / "files" / "prometheusrule.yaml"
RELEASE = "rotator"
NAMESPACE = "rotator-system"


@dataclass(frozen=True)
class Rendered:
    """The objects a render produced, plus the NOTES text."""

    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind``."""
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The single object of ``kind`` (named ``name``, when given)."""
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
        return found[0]

    def kinds(self) -> set[str]:
        """The kinds rendered."""
        return {o["kind"] for o in self.objects}

    def config(self) -> dict[str, Any]:
        """The rotator configuration in the ConfigMap, parsed."""
        data = yaml.safe_load(self.one("ConfigMap")["data"]["rotator.yaml"])
        assert isinstance(data, dict)
        return data


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> Rendered:
    """``helm template NAME CHART -n NAMESPACE`` with ``values``, parsed."""
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=name, namespace=namespace)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


def chart_values() -> dict[str, Any]:
    """The chart's default values.yaml, parsed."""
    data = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(data, dict)
    return data
