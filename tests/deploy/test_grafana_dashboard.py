"""The Grafana dashboard deploy/grafana/stackstate-key-rotator.json.

Every PromQL expression may only name metrics that the rotator exports: the names are found
with a simple pattern (``rotator_...``, ``_bucket``/``_sum``/``_count`` stripped back to the
histogram) and looked up in the families of :class:`rotator.daemon.metrics.Metrics`. Where
``promtool`` is installed (Debian's ``prometheus`` package, which ``.ci/run`` installs), every
expression must also parse, with Grafana's variables replaced by what Grafana would send.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator.daemon.metrics import Metrics

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "stackstate-key-rotator.json"
)
METRIC = re.compile(r"\brotator_[a-z_]+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
#: What Grafana puts in place of its variables when it sends a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".+", "$key": ".+"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The dashboard, parsed."""
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and template variable queries."""
    found = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    found += [v["definition"] for v in dashboard["templating"]["list"]]
    return found


def exported_metrics() -> set[str]:
    """The metric names a scrape of the rotator's registry can hold (counters with _total)."""
    names = set()
    for family in Metrics().registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


class TestDashboard:
    """The dashboard's model and its queries."""

    def test_every_metric_is_exported(self, dashboard: dict[str, Any]) -> None:
        """Each rotator_* name in a query is a family of rotator.daemon.metrics.Metrics."""
        exported = exported_metrics()
        used = {
            HISTOGRAM_SERIES.sub("", name)
            for expr in expressions(dashboard)
            for name in METRIC.findall(expr)
        }
        assert used, "no rotator metric found in the dashboard"
        assert used <= exported, f"not exported: {sorted(used - exported)}"

    def test_covers_what_operators_look_at(self, dashboard: dict[str, Any]) -> None:
        """Expiry, runway, rotations, failures by step and category, switch-over, alerts, leader."""
        used = {
            HISTOGRAM_SERIES.sub("", n) for e in expressions(dashboard) for n in METRIC.findall(e)
        }
        assert used >= {
            "rotator_key_expiry_timestamp_seconds",
            "rotator_key_rotation_runway_seconds",
            "rotator_rotations_total",
            "rotator_step_failures_total",
            "rotator_key_failure_category",
            "rotator_consumer_switch_seconds",
            "rotator_alerts_sent_total",
            "rotator_is_leader",
        }

    def test_datasource_is_an_import_input(self, dashboard: dict[str, Any]) -> None:
        """One ${DS_PROMETHEUS} input, used by every panel, target and variable."""
        (source,) = dashboard["__inputs"]
        assert (source["name"], source["type"], source["pluginId"]) == (
            "DS_PROMETHEUS",
            "datasource",
            "prometheus",
        )
        wanted = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == wanted, panel["title"]
            assert all(t["datasource"] == wanted for t in panel["targets"]), panel["title"]
        assert all(v["datasource"] == wanted for v in dashboard["templating"]["list"])

    def test_model_is_importable(self, dashboard: dict[str, Any]) -> None:
        """A stable uid, no instance id, unique panel ids, panels inside the 24-column grid."""
        assert dashboard["uid"] == "stackstate-key-rotator"
        assert dashboard["id"] is None
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids))
        for panel in panels(dashboard):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] != "row":
                assert panel["description"], panel["title"]
                refs = [t["refId"] for t in panel["targets"]]
                assert refs and len(refs) == len(set(refs)), panel["title"]

    def test_expressions_parse(self, dashboard: dict[str, Any], tmp_path: Path) -> None:
        """promtool accepts every panel expression as a rule (variables substituted)."""
        promtool = shutil.which("promtool")
        if promtool is None:
            message = "promtool is not installed (Debian package prometheus)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)
        rules = []
        for index, panel in enumerate(panels(dashboard)):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                rules.append({"record": f"dashboard:panel{index}:{target['refId']}", "expr": expr})
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        result = subprocess.run(  # noqa: PLW1510 - the exit status is asserted with the output
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
