"""Tests for the alert record and its JSON document."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from rotator.alerts.event import Alert, AlertEvent, events_of_class
from rotator.secrets import MASK, Secret, reset_registry
from tests.alerts.factory import make_alert

DOCUMENT_KEYS = {
    "source",
    "event",
    "severity",
    "managed_key",
    "kind",
    "key_id",
    "key_name",
    "expires_at",
    "step",
    "category",
    "error_type",
    "error",
    "run_id",
    "timestamp",
    "summary",
    "dedup_key",
    "resolves",
}


@pytest.fixture
def key_value() -> Iterator[str]:
    """A key value registered as a secret (forgotten after the test)."""
    yield Secret("sts-key-value-0123456789abcdef").reveal()
    reset_registry()


class TestAlert:
    """The Alert record: severity, event classes, dedup keys and the document."""

    @pytest.mark.parametrize(
        ("event", "severity"),
        [
            (AlertEvent.KEY_EXPIRED, "critical"),
            (AlertEvent.ROTATION_FAILED, "error"),
            (AlertEvent.SWITCH_TIMEOUT, "error"),
            (AlertEvent.CONFIG_INVALID, "error"),
            (AlertEvent.KEY_EXPIRING, "warning"),
            (AlertEvent.RECOVERED, "info"),
            (AlertEvent.ROTATION_SUCCEEDED, "info"),
        ],
    )
    def test_severity_follows_the_event(self, event: AlertEvent, severity: str) -> None:
        """Each event maps to its documented severity."""
        assert make_alert(event).severity == severity

    @pytest.mark.parametrize(
        ("event", "event_class"),
        [
            (AlertEvent.ROTATION_FAILED, "failure"),
            (AlertEvent.SWITCH_TIMEOUT, "failure"),
            (AlertEvent.KEY_EXPIRING, "expiry"),
            (AlertEvent.KEY_EXPIRED, "expiry"),
            (AlertEvent.CONFIG_INVALID, "config"),
        ],
    )
    def test_dedup_key_names_managed_key_and_class(
        self, event: AlertEvent, event_class: str
    ) -> None:
        """The dedup key is rotator/<managed key>/<event class>."""
        assert make_alert(event).dedup_key == f"rotator/agent-prod/{event_class}"

    def test_recovered_carries_the_dedup_key_of_the_class_it_resolves(self) -> None:
        """A recovered alert shares its dedup key with the failures it resolves."""
        recovered = make_alert(AlertEvent.RECOVERED, resolves="expiry")
        assert recovered.dedup_key == make_alert(AlertEvent.KEY_EXPIRED).dedup_key

    def test_alert_without_managed_key_uses_a_dash(self) -> None:
        """A configuration alert has no managed key and a dash in its dedup key."""
        alert = make_alert(AlertEvent.CONFIG_INVALID, managed_key=None)
        assert alert.dedup_key == "rotator/-/config"

    def test_recovered_must_name_a_resolvable_class(self) -> None:
        """A recovered alert without a valid class to resolve is refused."""
        with pytest.raises(ValueError, match="must resolve"):
            make_alert(AlertEvent.RECOVERED, resolves=None)

    def test_only_recovered_resolves(self) -> None:
        """A failure alert cannot claim to resolve a class."""
        with pytest.raises(ValueError, match="only a recovered alert"):
            make_alert(AlertEvent.ROTATION_FAILED, resolves="failure")

    def test_events_of_class_lists_the_grouped_failures(self) -> None:
        """The failure class groups rotation_failed and switch_timeout."""
        assert set(events_of_class("failure")) == {
            AlertEvent.ROTATION_FAILED,
            AlertEvent.SWITCH_TIMEOUT,
        }

    def test_document_has_exactly_the_documented_keys(self) -> None:
        """to_document returns the documented keys with RFC 3339 UTC timestamps."""
        document = make_alert().to_document()
        assert set(document) == DOCUMENT_KEYS
        assert document["source"] == "stackstate-key-rotator"
        assert document["expires_at"] == "2026-02-01T00:00:00Z"
        assert document["timestamp"] == "2026-01-25T12:00:00Z"
        assert document["key_id"] == 4711
        assert document["dedup_key"] == "rotator/agent-prod/failure"
        json.dumps(document)  # serialisable as is

    def test_document_of_unknown_expiry_is_null(self) -> None:
        """An alert without an expiry documents expires_at as null."""
        assert make_alert(expires_at=None).to_document()["expires_at"] is None

    def test_naive_timestamps_are_taken_as_utc(self) -> None:
        """A naive timestamp is rendered as UTC rather than rejected."""
        alert = make_alert(timestamp=datetime(2026, 1, 25, 12, 0))  # naive on purpose
        assert alert.to_document()["timestamp"] == "2026-01-25T12:00:00Z"

    def test_document_redacts_registered_secrets(self, key_value: str) -> None:
        """A registered key value inside any text field is masked in the document."""
        alert = make_alert(
            error=f"refused token {key_value}",
            summary=f"agent-prod: {key_value}",
            key_name=key_value,
        )
        text = json.dumps(alert.to_document())
        assert key_value not in text
        assert MASK in text

    def test_alert_is_frozen(self) -> None:
        """An alert cannot be changed after it was built."""
        alert: Alert = make_alert()
        with pytest.raises(AttributeError):
            alert.summary = "changed"  # type: ignore[misc]


class TestLayering:
    """The events belong to the alerts; the configuration imports them, not the other way."""

    def test_the_alert_record_does_not_import_the_configuration(self) -> None:
        """Importing rotator.alerts.event loads no rotator.config module."""
        code = (
            "import sys, rotator.alerts.event\n"
            "print(sorted(m for m in sys.modules if m.startswith('rotator.config')))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert done.stdout.strip() == "[]"
