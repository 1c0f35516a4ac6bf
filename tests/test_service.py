"""Tests for rotator.daemon.service and .probes: readiness and the per-key metric series of the
daemon."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator.daemon.probes import STACKSTATE_ERROR_TYPES, stackstate_answered
from rotator.daemon.service import Service
from rotator.engine.model import KeyResult
from rotator.errors import (
    AmbiguousCreateError,
    StackStateError,
    StackStateTimeout,
    StackStateUnreachable,
)
from tests.plugins.world import World
from tests.result_shapes import Shape, messages, shaped, shapes


def failed(step: str, error_type: str) -> KeyResult:
    """A failed result whose failure is ``step`` / ``error_type``."""
    return shaped(("blocked", "failed", (step, "retry"), error_type), "boom")


class TestStackStateAnswered:
    """Readiness from a run's results: only a StackState failure while observing flips it."""

    def test_every_stackstate_error_class_counts(self) -> None:
        """The set holds StackStateError and all its subclasses, by class name."""
        for cls in (StackStateError, StackStateUnreachable, StackStateTimeout):
            assert cls.__name__ in STACKSTATE_ERROR_TYPES
        assert AmbiguousCreateError.__name__ in STACKSTATE_ERROR_TYPES
        assert "TargetUnavailable" not in STACKSTATE_ERROR_TYPES

    def test_listing_failure_is_not_ready(self) -> None:
        """A StackState error in step observe means StackState did not answer."""
        ok = shaped(("ok", "unchanged", None, "-"), "fine")
        assert stackstate_answered([ok, failed("observe", "StackStateUnreachable")]) is False

    def test_other_failures_leave_readiness_alone(self) -> None:
        """A target read error, or a StackState error in a later step, keeps it ready."""
        assert stackstate_answered([failed("observe", "TargetUnavailable")]) is True
        assert stackstate_answered([failed("create", "StackStateServerError")]) is True

    def test_an_empty_run_says_nothing(self) -> None:
        """Without results readiness is not changed."""
        assert stackstate_answered([]) is None

    # No deadline: the 2-core CI machine runs other tests beside these.
    @settings(deadline=None)
    @given(shapes=st.lists(shapes, max_size=5), first=messages, second=messages)
    def test_rewording_every_message_changes_no_answer(
        self, shapes: list[Shape], first: str, second: str
    ) -> None:
        """Two runs of equal shape whose messages differ give the same readiness."""
        answers = {
            stackstate_answered([shaped(shape, message) for shape in shapes])
            for message in (first, second)
        }
        assert len(answers) == 1


def series_keys(service: Service) -> set[str]:
    """Managed keys that have any series in the service's registry."""
    return {
        sample.labels["key"]
        for family in service.metrics.registry.collect()
        for sample in family.samples
        if "key" in sample.labels
    }


class TestServiceSeries:
    """The daemon's per-key series follow the configuration."""

    def test_load_initialises_and_reload_follows_the_keys(self, world: World) -> None:
        """Loading creates every key's series at 0; a reload adds new keys, drops removed."""
        world.add_key("agent")
        world.add_key("otel")
        service = Service(world.write_config())
        service.load()
        try:
            registry = service.metrics.registry
            assert series_keys(service) == {"agent", "otel"}
            assert (
                registry.get_sample_value(
                    "rotator_step_failures_total", {"key": "agent", "step": "push"}
                )
                == 0
            )
            world.keys = [k for k in world.keys if k["name"] != "otel"]
            world.add_key("collector")
            world.write_config()
            assert service.reload()
            assert series_keys(service) == {"agent", "collector"}
        finally:
            service.loaded.runtime.close()

    def test_a_listing_failure_makes_the_service_unready(self, world: World) -> None:
        """StackState answering 503 to the key listing turns readiness to 503, then back."""
        world.add_key("agent")
        service = Service(world.write_config())
        service.load()
        try:
            service.run_key("agent")
            assert service.readiness()[0] == 200
            world.stackstate.fail_next("GET", r"/api/security/tokens", 503, count=None)
            service.run_key("agent")
            status, body = service.readiness()
            assert status == 503 and body["ready"] is False
            world.stackstate.clear_faults()
            service.run_key("agent")
            assert service.readiness()[0] == 200
        finally:
            service.loaded.runtime.close()
