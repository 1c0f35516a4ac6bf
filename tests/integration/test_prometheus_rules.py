"""The shipped PrometheusRule evaluated by ``promtool test rules`` over real scrapes.

``rotator run`` works against the emulators; its ``/metrics`` is scraped once after a healthy
run and once after ONE failed rotation. Each scrape becomes a promtool input series file: every
sample a series held at its scraped value, labelled with the ``job`` and ``instance`` that
Prometheus would add, plus ``up``. The rule groups (``spec.groups`` of
``deploy/kubernetes/prometheusrule.yaml``; promtool reads plain rule files, not the CRD) are
evaluated over them, and the test asserts which alerts fire.

promtool is Debian's ``prometheus`` package (``.ci/run`` installs it): without it these tests
fail under ``CI=true`` and skip elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_service import Daemon, wait_for
from tests.plugins.world import World

pytestmark = pytest.mark.slow

RULES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "prometheusrule.yaml"
JOB = "stackstate-key-rotator"
INSTANCE = "10.42.0.7:8080"
#: The alerts that say a key failed; the categories that ask a person to act.
ROTATION_FAILED = "StackStateKeyRotationFailed"
STEP_FAILING = "StackStateKeyRotatorStepFailing"
NEEDS_ACTION = "StackStateKeyRotatorNeedsAction"
ACTION_CATEGORIES = frozenset({"fix-config", "fix-permissions", "human"})

#: One scrape: promtool series selector -> value.
Scrape = dict[str, float]
#: Expected alerts: alert name -> the label sets of its firing alerts.
Expected = Mapping[str, Sequence[Mapping[str, str]]]


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool executable; fails under CI=true when missing, else skips."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is missing: install Debian's prometheus package (as .ci/run does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def selector(name: str, labels: Mapping[str, str]) -> str:
    """``name{a="x",...}`` with the labels sorted and quoted."""
    inner = ",".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def parse_scrape(text: str) -> Scrape:
    """The samples of a ``/metrics`` answer as series Prometheus would store (job, instance,
    and ``up`` added)."""
    found: Scrape = {selector("up", {"job": JOB, "instance": INSTANCE}): 1.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {**sample.labels, "job": JOB, "instance": INSTANCE}
            found[selector(sample.name, labels)] = sample.value
    return found


def number(value: float) -> str:
    """A value in promtool's series notation (no exponent: ``+`` means something there)."""
    return str(int(value)) if value.is_integer() else format(value, "f")


def input_series(timeline: Sequence[tuple[Scrape, int]]) -> list[dict[str, str]]:
    """Each scrape held for its number of 1-minute samples, one after the other; a series
    missing from a scrape has no samples meanwhile."""
    names = sorted({name for scrape, _ in timeline for name in scrape})
    series = []
    for name in names:
        parts = [
            f"{number(scrape[name])}+0x{samples - 1}" if name in scrape else f"_x{samples}"
            for scrape, samples in timeline
        ]
        series.append({"series": name, "values": " ".join(parts)})
    return series


def rule_groups(*, annotations: bool) -> list[dict[str, Any]]:
    """``spec.groups`` of the shipped PrometheusRule; without annotations on request (promtool
    compares them, and the tests are about firing, not wording)."""
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    if not annotations:
        for group in groups:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    return groups


def alert_names() -> list[str]:
    """Every alert the rule file defines."""
    return [rule["alert"] for group in rule_groups(annotations=True) for rule in group["rules"]]


class Promtool:
    """Runs ``promtool test rules`` over a timeline of scrapes."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.rules = directory / "rules.yaml"
        self.rules.write_text(yaml.safe_dump({"groups": rule_groups(annotations=False)}))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """promtool with ``args`` in the work directory."""
        return subprocess.run(
            [self.executable, *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test(
        self, timeline: Sequence[tuple[Scrape, int]], checks: Mapping[str, Expected]
    ) -> subprocess.CompletedProcess[str]:
        """Evaluate the rules; ``checks`` maps an eval time (``5m``) to the alerts expected
        then: every alert of the file is checked, those not named must not fire."""
        tests = [
            {
                "eval_time": at,
                "alertname": name,
                "exp_alerts": [{"exp_labels": dict(labels)} for labels in expected.get(name, [])],
            }
            for at, expected in checks.items()
            for name in alert_names()
        ]
        document = {
            "rule_files": [self.rules.name],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": input_series(timeline),
                    "alert_rule_test": tests,
                }
            ],
        }
        path = self.directory / "test.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return self.run("test", "rules", path.name)


@pytest.fixture
def rules(promtool: str, tmp_path: Path) -> Promtool:
    """promtool with the shipped rule groups extracted into a plain rule file."""
    return Promtool(promtool, tmp_path)


def scrape_when(daemon: Daemon, ready: Callable[[Scrape], bool], what: str) -> Scrape:
    """The first scrape of ``daemon`` for which ``ready`` holds."""

    def attempt() -> Scrape | None:
        answer = daemon.get("/metrics")
        if answer is None or answer.status_code != 200:
            return None
        scrape = parse_scrape(answer.text)
        return scrape if ready(scrape) else None

    found: Scrape = wait_for(attempt, what)
    return found


def value(scrape: Scrape, name: str, **labels: str) -> float | None:
    """One series of a scrape."""
    return scrape.get(selector(name, {**labels, "job": JOB, "instance": INSTANCE}))


def failure_alerts(scrape: Scrape) -> dict[str, list[dict[str, str]]]:
    """The alerts a scrape with one failed rotation of ``agent`` must fire."""
    steps = [
        step
        for step in ("preflight", "observe", "create", "verify", "push", "restart", "switch")
        if (value(scrape, "rotator_step_failures_total", key="agent", step=step) or 0) > 0
    ]
    categories = [
        category
        for category in ACTION_CATEGORIES
        if value(scrape, "rotator_key_failure_category", key="agent", category=category) == 1
    ]
    return {
        ROTATION_FAILED: [{"key": "agent", "severity": "warning"}],
        STEP_FAILING: [{"key": "agent", "step": step, "severity": "warning"} for step in steps],
        NEEDS_ACTION: [
            {"key": "agent", "category": category, "severity": "warning"} for category in categories
        ],
    }


class TestPrometheusRule:
    """The rules fire from the first failure a real daemon reports, and not when healthy."""

    def test_rule_file_is_valid(self, rules: Promtool) -> None:
        """promtool accepts the groups with their annotations (templates included)."""
        full = rules.directory / "full.yaml"
        full.write_text(yaml.safe_dump({"groups": rule_groups(annotations=True)}))
        checked = rules.run("check", "rules", full.name)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    def test_one_failure_fires_and_a_healthy_scrape_does_not(
        self, world: World, start_daemon: Callable[[], Daemon], rules: Promtool
    ) -> None:
        """Healthy: no alert. One failed rotation: the failure alerts fire, both when the
        first scrape of a new pod already counts it and after hours of healthy scrapes."""
        world.defaults = {"validity": "20d", "rotate_before": "14d"}
        world.add_key("agent")
        healthy_daemon = start_daemon()
        healthy = scrape_when(
            healthy_daemon,
            lambda s: (
                value(s, "rotator_rotations_total", key="agent", result="success") == 1
                and (value(s, "rotator_last_success_timestamp_seconds", key="agent") or 0) > 0
            ),
            "a healthy bootstrap in /metrics",
        )
        assert healthy_daemon.stop() == 0
        # Due now (rotate_before > time left), and the new key's role does not exist: verify
        # refuses it, the new key is deleted and the rotation fails; the old key stays.
        world.defaults = {"validity": "90d", "rotate_before": "30d"}
        world.keys[0]["roles"] = ["no-such-role"]
        failing_daemon = start_daemon()
        failed = scrape_when(
            failing_daemon,
            lambda s: value(s, "rotator_rotations_total", key="agent", result="failed") == 1,
            "one failed rotation in /metrics",
        )
        assert failing_daemon.stop() == 0
        assert not any("_created" in name for name in failed)
        assert value(failed, "rotator_rotations_total", key="agent", result="success") == 0
        expected = failure_alerts(failed)
        assert expected[STEP_FAILING], "the failed run counted no step failure"

        quiet = rules.test([(healthy, 120)], {"5m": {}, "20m": {}, "70m": {}})
        assert quiet.returncode == 0, quiet.stdout + quiet.stderr
        first_scrape = rules.test([(failed, 30)], {"5m": expected})
        assert first_scrape.returncode == 0, first_scrape.stdout + first_scrape.stderr
        later = rules.test(
            [(healthy, 120), (failed, 30)],
            {"119m": {}, "125m": expected},
        )
        assert later.returncode == 0, later.stdout + later.stderr
        for secret in world.secret_values():
            assert secret not in json.dumps([healthy, failed])
