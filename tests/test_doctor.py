"""Tests for rotator.doctor's runner and rotator.cli.doctor's rendering (no live system needed)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from rotator.cli.doctor import WIDTH, DoctorProgress, render_text
from rotator.config import ManagedKey
from rotator.doctor import (
    CHECKS,
    CheckResult,
    DoctorCheck,
    DoctorEnv,
    KeyReport,
    doctor_document,
    run_checks,
)
from rotator.errors import TargetForbidden
from rotator.wiring import build_runtime
from tests.plugins.config import TEST_SERVICE_TOKEN, ConfigLoader, minimal_config


@pytest.fixture
def env(load_yaml_config: ConfigLoader) -> Iterator[DoctorEnv]:
    """A DoctorEnv for a minimal configuration (nothing is contacted unless a check asks)."""
    data = minimal_config()
    data["keys"].append({**data["keys"][0], "name": "second"})
    data["keys"][1]["targets"] = [{**data["keys"][0]["targets"][0], "name": "second-key"}]
    config = load_yaml_config(data)
    with build_runtime(config) as runtime:
        yield DoctorEnv(
            config, stackstate=runtime.stackstate, kube=runtime.kube, vault=runtime.vault
        )


def ok_check(env: DoctorEnv, key: ManagedKey) -> list[CheckResult]:
    """Always passes."""
    return [CheckResult("fine", key.name, True, "all good")]


class TestRunChecks:
    """The runner calls every check for every key and never lets one hide the others."""

    def test_a_rotator_error_becomes_one_failed_row(self, env: DoctorEnv) -> None:
        """A check raising TargetForbidden: a failed row with its message and a category fix."""

        def refused(env: DoctorEnv, key: ManagedKey) -> list[CheckResult]:
            raise TargetForbidden("secret x: forbidden (403)")

        reports = run_checks(
            env,
            env.config.keys,
            checks=[DoctorCheck("refused", refused), DoctorCheck("fine", ok_check)],
        )
        assert [r.key for r in reports] == ["agent", "second"]
        first = reports[0].checks
        assert (first[0].check, first[0].ok, first[0].detail) == (
            "refused",
            False,
            "secret x: forbidden (403)",
        )
        assert first[0].fix == "grant the permission named in the message"
        assert first[1].ok and not reports[0].ok

    def test_a_crashing_check_is_reported_without_its_message(self, env: DoctorEnv) -> None:
        """An unexpected exception: a failed row naming its type, never its text."""

        def broken(env: DoctorEnv, key: ManagedKey) -> list[CheckResult]:
            raise ValueError(f"boom {TEST_SERVICE_TOKEN}")

        (report, _) = run_checks(env, env.config.keys, checks=[DoctorCheck("broken", broken)])
        (row,) = report.checks
        assert not row.ok and "ValueError" in row.detail
        assert TEST_SERVICE_TOKEN not in str(doctor_document([report]))

    def test_shared_answers_are_computed_once(self, env: DoctorEnv) -> None:
        """Two keys asking the same shared question cost one computation."""
        calls: list[str] = []

        def shared_check(env: DoctorEnv, key: ManagedKey) -> list[CheckResult]:
            def compute() -> CheckResult:
                calls.append(key.name)
                return CheckResult("shared", "system", True, "up")

            return [env.shared("system", compute)]

        reports = run_checks(env, env.config.keys, checks=[DoctorCheck("shared", shared_check)])
        assert calls == ["agent"]
        assert all(report.ok for report in reports)

    def test_progress_is_called_before_each_check(self, env: DoctorEnv) -> None:
        """(key number, number of keys, key, check) before every check."""
        seen: list[tuple[int, int, str, str]] = []
        run_checks(
            env,
            env.config.keys,
            checks=[DoctorCheck("fine", ok_check)],
            progress=lambda *args: seen.append(args),
        )
        assert seen == [(1, 2, "agent", "fine"), (2, 2, "second", "fine")]

    def test_registry_names_are_unique(self) -> None:
        """Every registered check has its own name."""
        names = [check.name for check in CHECKS]
        assert len(names) == len(set(names))


class TestRendering:
    """Text output: ok/warn/FAIL lines, fixes under failures and warnings, 100 columns."""

    def report(self) -> KeyReport:
        return KeyReport(
            "agent",
            (
                CheckResult("fine", "a", True, "all good"),
                CheckResult("optional", "b", True, "optional: missing x", "grant x"),
                CheckResult("broken", "c " * 60, False, "refused " * 20, "grant " * 30),
            ),
        )

    def test_statuses_fixes_and_summary(self) -> None:
        """warn for an ok row with a fix; fix lines under warn and FAIL; a summary line."""
        lines = render_text([self.report()]).splitlines()
        assert lines[0] == "agent: 1 failed"
        assert lines[1].startswith("  ok    fine ")
        assert lines[2].startswith("  warn  optional ")
        assert lines[3].strip() == "fix: grant x"
        assert lines[4].startswith("  FAIL  broken ")
        assert any(line.strip().startswith("fix: grant grant") for line in lines[4:])
        assert lines[-1] == "1 managed key, 3 checks: 1 failed, 1 warning"
        assert max(len(line) for line in lines) <= WIDTH

    def test_document_shape(self) -> None:
        """doctor_document: keys, each with key and checks of five fields."""
        document = doctor_document([self.report()])
        assert list(document) == ["keys"]
        assert [set(row) for row in document["keys"][0]["checks"]] == [
            {"check", "subject", "ok", "detail", "fix"}
        ] * 3


class TestProgress:
    """Progress lines go to stderr only on a terminal."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def test_silent_when_not_a_terminal(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A pipe or file: nothing."""
        progress = DoctorProgress(io.StringIO())
        progress(1, 2, "agent", "kubernetes-rbac")
        assert not progress.enabled
        assert capsys.readouterr().err == ""

    def test_prints_on_a_terminal(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A terminal: ``[1/2] agent: kubernetes-rbac`` on stderr."""
        progress = DoctorProgress(self.Terminal())
        progress(1, 2, "agent", "kubernetes-rbac")
        assert capsys.readouterr().err == "[1/2] agent: kubernetes-rbac\n"
