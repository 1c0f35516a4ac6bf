"""The hand-over of ``rotate`` requests through the Lease (rotator.handoff).

The annotation formats are tested as data; :class:`LeaseRequester` runs against the Kubernetes
emulator over real HTTP, its clocks injected: its ``sleep`` moves both clocks and lets the test
act as the other party (a daemon answering, a daemon dying) between two looks at the Lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.clients.kubernetes import KubeClients
from rotator.daemon.leader import LeaderElector, LeaseLock
from rotator.errors import LeaseForbidden, LeaseInvalid
from rotator.handoff import (
    MAX_REPORT_BYTES,
    REQUEST_ANNOTATION,
    RESPONSE_ANNOTATION,
    ROLE_ANNOTATION,
    ROLE_DAEMON,
    ROLE_RUN,
    HandedOver,
    HeldLease,
    LeaseBusy,
    LeaseRequester,
    LeaseTimings,
    RunRequest,
    RunResponse,
    exit_code,
    pending_request,
    response_to,
    set_response,
    summarize_report,
)
from rotator_sandbox.kubernetes import KubernetesEmulator
from tests.plugins.clock import FrozenClock

NAMESPACE = "default"
LEASE = "stackstate-key-rotator"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TIMINGS = LeaseTimings(lease_duration=15, renew_deadline=10, retry_period=2)


def request(
    request_id: str = "r1", *, keys: tuple[str, ...] = (), force: bool = True
) -> RunRequest:
    """A request written at NOW, valid for five minutes."""
    return RunRequest(
        id=request_id,
        keys=keys,
        force=force,
        requester="rotate-host-1",
        requested_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
    )


def report(*outcomes: tuple[str, str]) -> dict[str, Any]:
    """A rotate JSON document with one key per (decision, outcome)."""
    return {
        "dry_run": False,
        "keys": [
            {
                "key": f"k{i}",
                "kind": "service-token",
                "decision": decision,
                "reason": "r",
                "outcome": outcome,
                "error": None,
                "failure": None,
                "actions": [],
            }
            for i, (decision, outcome) in enumerate(outcomes)
        ],
    }


class TestRequestFormat:
    """``rotator.stackstate.io/request``."""

    def test_round_trips_through_the_annotation(self) -> None:
        """What the requester writes, the leader reads back unchanged."""
        written = request(keys=("agent", "otel"))
        annotations = {REQUEST_ANNOTATION: written.to_json()}
        assert RunRequest.from_annotations(annotations) == written
        assert json.loads(annotations[REQUEST_ANNOTATION]) == {
            "id": "r1",
            "keys": ["agent", "otel"],
            "force": True,
            "requester": "rotate-host-1",
            "requested_at": "2025-06-01T12:00:00.000000Z",
            "expires_at": "2025-06-01T12:05:00.000000Z",
        }

    @pytest.mark.parametrize(
        "text",
        ["", "not json", "[]", '{"id": "r1"}', '{"id": "", "keys": [], "force": true}'],
    )
    def test_a_malformed_request_is_none(self, text: str) -> None:
        """Anything but a complete request reads as no request (the leader ignores it)."""
        assert RunRequest.from_annotations({REQUEST_ANNOTATION: text}) is None

    def test_new_requests_get_fresh_ids_and_an_expiry(self) -> None:
        """Each request has its own id; it expires ``valid_for`` after it was made."""
        first = RunRequest.new(
            ["a", "a"], force=False, requester="x", valid_for=timedelta(minutes=1), now=NOW
        )
        second = RunRequest.new([], force=False, requester="x", valid_for=timedelta(1), now=NOW)
        assert first.id != second.id
        assert first.keys == ("a",)
        assert first.expired(NOW + timedelta(minutes=1))
        assert not first.expired(NOW + timedelta(seconds=59))


class TestResponseFormat:
    """``rotator.stackstate.io/response``."""

    def test_round_trips_with_its_report(self) -> None:
        """A done response carries the report document and the exit code."""
        answer = RunResponse(
            "r1", "done", "daemon-1", NOW, NOW, exit_code=0, report=report(("rotate", "rotated"))
        )
        assert RunResponse.from_annotations({RESPONSE_ANNOTATION: answer.to_json()}) == answer
        assert answer.final

    def test_a_large_report_is_summarised(self) -> None:
        """Past MAX_REPORT_BYTES the report keeps each key's decision, outcome and failure."""
        big = report(*[("rotate", "rotated")] * 400)
        for entry in big["keys"]:
            entry["actions"] = [{"action": "push", "target": "t" * 50, "detail": "d" * 200}]
        text = RunResponse("r1", "done", "daemon-1", report=big).to_json()
        assert len(text.encode()) < MAX_REPORT_BYTES
        parsed = RunResponse.from_annotations({RESPONSE_ANNOTATION: text})
        assert parsed is not None and parsed.report is not None
        assert parsed.report["summarized"] is True
        assert parsed.report == summarize_report(big)
        assert set(parsed.report["keys"][0]) == {
            "key",
            "kind",
            "decision",
            "reason",
            "outcome",
            "error",
            "failure",
        }

    def test_running_is_not_final(self) -> None:
        """A claimed request is running until the leader writes its outcome."""
        assert not RunResponse("r1", "running", "daemon-1").final


class TestPendingAndAnswers:
    """Which request is pending, and annotation changes that write answers."""

    def test_pending_until_finally_answered_or_expired(self) -> None:
        """A request is pending while unanswered or running; not once done, nor past expiry."""
        written = {REQUEST_ANNOTATION: request().to_json()}
        assert pending_request(written, NOW) == request()
        running = {**written, RESPONSE_ANNOTATION: RunResponse("r1", "running", "d").to_json()}
        assert pending_request(running, NOW) == request()
        done = {**written, RESPONSE_ANNOTATION: RunResponse("r1", "done", "d").to_json()}
        assert pending_request(done, NOW) is None
        assert pending_request(written, NOW + timedelta(minutes=5)) is None
        old = {**written, RESPONSE_ANNOTATION: RunResponse("r0", "done", "d").to_json()}
        assert pending_request(old, NOW) == request()

    def test_a_claim_is_written_once(self) -> None:
        """``unclaimed`` writes only without a response to that request: one leader wins."""
        claim = set_response(RunResponse("r1", "running", "d1"), only_if="unclaimed")
        written = claim({REQUEST_ANNOTATION: request().to_json()})
        assert written is not None
        assert response_to(written, "r1") == RunResponse("r1", "running", "d1")
        again = set_response(RunResponse("r1", "running", "d2"), only_if="unclaimed")
        assert again(written) is None

    def test_an_outcome_needs_the_claim_and_the_request(self) -> None:
        """``claimed`` writes only over a running response; a withdrawn request gets nothing."""
        done = set_response(RunResponse("r1", "done", "d1"), only_if="claimed")
        assert done({REQUEST_ANNOTATION: request().to_json()}) is None
        assert done({}) is None
        claimed = {
            REQUEST_ANNOTATION: request().to_json(),
            RESPONSE_ANNOTATION: RunResponse("r1", "running", "d1").to_json(),
        }
        written = done(claimed)
        assert written is not None
        assert response_to(written, "r1") == RunResponse("r1", "done", "d1")
        newer = {REQUEST_ANNOTATION: request("r2").to_json()}
        assert done(newer) is None

    @pytest.mark.parametrize(
        ("outcomes", "keys", "code"),
        [
            ((("rotate", "rotated"),), (), 0),
            ((("rotate", "failed"),), (), 1),
            ((("blocked", "unchanged"),), (), 0),
            ((("blocked", "unchanged"),), ("k0",), 1),
        ],
    )
    def test_exit_code_is_rotates(
        self, outcomes: tuple[tuple[str, str], ...], keys: tuple[str, ...], code: int
    ) -> None:
        """1 for a failed key, or a forced run of named keys that left one blocked."""
        assert exit_code(report(*outcomes), request(keys=keys)) == code


class Clocks:
    """Monotonic and wall clocks of the requester, moved together by its ``sleep``."""

    def __init__(self) -> None:
        self.monotonic = 1000.0
        self.wall = FrozenClock(NOW)
        self.on_sleep: list[Callable[[], None]] = []

    def mono(self) -> float:
        """The monotonic clock."""
        return self.monotonic

    def sleep(self, seconds: float) -> None:
        """Time passes; then the next scripted action of the other party runs (if any)."""
        self.monotonic += seconds
        self.wall.advance(seconds)
        if self.on_sleep:
            self.on_sleep.pop(0)()


@pytest.fixture
def clients(kubeconfig: Path) -> Iterator[KubeClients]:
    """Clients for the ``kube`` emulator."""
    with KubeClients(kubeconfig, request_timeout=5.0) as built:
        yield built


@pytest.fixture
def clocks() -> Clocks:
    """The requester's clocks."""
    return Clocks()


@pytest.fixture
def requester(clients: KubeClients, clocks: Clocks) -> Iterator[LeaseRequester]:
    """A requester ``rotate-host-1`` on the Lease."""
    lock = LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity="rotate-host-1")
    built = LeaseRequester(
        lock, TIMINGS, clock=clocks.mono, wall_clock=clocks.wall, sleep=clocks.sleep
    )
    yield built
    built.elector.stop(release=True)


def holder_elector(clients: KubeClients, clocks: Clocks, identity: str, role: str) -> LeaderElector:
    """Another process holding the Lease (driven by hand), on the same wall clock."""
    return LeaderElector(
        LeaseLock(clients, namespace=NAMESPACE, name=LEASE, identity=identity),
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        on_started_leading=lambda: None,
        on_stopped_leading=lambda: None,
        holder_annotations={ROLE_ANNOTATION: role},
        clock=clocks.mono,
        wall_clock=clocks.wall,
    )


def lease_annotations(kube: KubernetesEmulator) -> dict[str, str]:
    """The Lease's annotations as stored."""
    lease = kube.get("leases", NAMESPACE, LEASE)
    assert lease is not None
    return dict(lease["metadata"].get("annotations") or {})


def lease_holder(kube: KubernetesEmulator) -> str:
    """The Lease's holder as stored."""
    lease = kube.get("leases", NAMESPACE, LEASE)
    assert lease is not None
    return str(lease["spec"].get("holderIdentity") or "")


class TestLeaseRequester:
    """A one-shot run: hold the Lease, hand over to a live daemon, or wait its turn."""

    def test_without_a_lease_the_run_holds_it_and_releases_it(
        self, requester: LeaseRequester, kube: KubernetesEmulator
    ) -> None:
        """No Lease: it is created with the run as holder (role run) and released on close."""
        claim = requester.claim(request(), timeout=30, wait=True)
        assert isinstance(claim, HeldLease)
        assert lease_holder(kube) == "rotate-host-1"
        assert lease_annotations(kube)[ROLE_ANNOTATION] == ROLE_RUN
        assert claim.still_held()
        claim.close()
        assert lease_holder(kube) == ""
        assert ROLE_ANNOTATION not in lease_annotations(kube)

    def test_a_live_daemon_gets_the_request_and_its_answer_is_returned(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """The request goes into the Lease; the daemon's final answer comes back."""
        daemon = holder_elector(clients, clocks, "daemon-1", ROLE_DAEMON)
        assert daemon.try_acquire_or_renew()
        ours = request()

        def daemon_answers() -> None:
            written = RunRequest.from_annotations(lease_annotations(kube))
            assert written == ours
            answer = RunResponse(ours.id, "done", "daemon-1", exit_code=0, report=report())
            daemon.update_annotations(set_response(answer))

        clocks.on_sleep.append(daemon_answers)
        claim = requester.claim(ours, timeout=30, wait=True)
        assert isinstance(claim, HandedOver)
        assert (claim.leader, claim.lease) == ("daemon-1", f"{NAMESPACE}/{LEASE}")
        assert claim.response is not None and claim.response.state == "done"
        assert lease_holder(kube) == "daemon-1"

    def test_no_wait_returns_once_the_request_is_written(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """``wait=False``: handed over without an answer; the request is in the Lease."""
        daemon = holder_elector(clients, clocks, "daemon-1", ROLE_DAEMON)
        assert daemon.try_acquire_or_renew()
        claim = requester.claim(request(), timeout=30, wait=False)
        assert isinstance(claim, HandedOver)
        assert claim.response is None
        assert RunRequest.from_annotations(lease_annotations(kube)) == request()
        assert clocks.monotonic == 1000.0  # no waiting at all

    def test_another_run_holding_the_lease_is_waited_for(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """A run holds the Lease: no request is written; once it releases, we hold it."""
        other = holder_elector(clients, clocks, "rotate-host-2", ROLE_RUN)
        assert other.try_acquire_or_renew()
        clocks.on_sleep += [other.try_acquire_or_renew, other.release]
        claim = requester.claim(request(), timeout=30, wait=True)
        assert isinstance(claim, HeldLease)
        assert REQUEST_ANNOTATION not in lease_annotations(kube)
        assert lease_holder(kube) == "rotate-host-1"
        claim.close()

    def test_gives_up_on_a_run_that_keeps_the_lease(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """A run renewing past the timeout: LeaseBusy, nothing written."""
        other = holder_elector(clients, clocks, "rotate-host-2", ROLE_RUN)
        assert other.try_acquire_or_renew()
        clocks.on_sleep += [other.try_acquire_or_renew] * 40
        with pytest.raises(LeaseBusy, match="held by another rotate run"):
            requester.claim(request(), timeout=5, wait=True)
        assert REQUEST_ANNOTATION not in lease_annotations(kube)
        assert lease_holder(kube) == "rotate-host-2"

    def test_waits_while_another_request_is_pending(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """One request at a time: ours is written once the other one was answered."""
        daemon = holder_elector(clients, clocks, "daemon-1", ROLE_DAEMON)
        assert daemon.try_acquire_or_renew()
        daemon.update_annotations(lambda a: {**a, REQUEST_ANNOTATION: request("other").to_json()})

        def answer(request_id: str) -> Callable[[], None]:
            def act() -> None:
                daemon.try_acquire_or_renew()
                response = RunResponse(request_id, "done", "daemon-1", report=report())
                daemon.update_annotations(set_response(response))

            return act

        clocks.on_sleep += [daemon.try_acquire_or_renew, answer("other"), answer("r1")]
        claim = requester.claim(request("r1"), timeout=30, wait=True)
        assert isinstance(claim, HandedOver)
        assert claim.response is not None and claim.response.id == "r1"

    def test_a_daemon_that_dies_before_taking_the_request_is_taken_over(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """Nobody answers and the Lease expires: the run withdraws its request and holds it."""
        daemon = holder_elector(clients, clocks, "daemon-1", ROLE_DAEMON)
        assert daemon.try_acquire_or_renew()
        claim = requester.claim(request(), timeout=60, wait=True)
        assert isinstance(claim, HeldLease)
        assert lease_holder(kube) == "rotate-host-1"
        assert REQUEST_ANNOTATION not in lease_annotations(kube)
        claim.close()

    def test_a_daemon_that_dies_while_running_it_is_reported_interrupted(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """Taken, then the daemon stops renewing: the run says so instead of running again."""
        daemon = holder_elector(clients, clocks, "daemon-1", ROLE_DAEMON)
        assert daemon.try_acquire_or_renew()

        def daemon_claims() -> None:
            claim_it = set_response(RunResponse("r1", "running", "daemon-1"), only_if="unclaimed")
            daemon.update_annotations(claim_it)

        clocks.on_sleep.append(daemon_claims)
        claim = requester.claim(request("r1"), timeout=60, wait=True)
        assert isinstance(claim, HandedOver)
        assert claim.response is not None
        assert claim.response.state == "interrupted"
        assert "daemon-1 stopped while running" in (claim.response.error or "")
        assert lease_holder(kube) == ""  # taken to find out, then released

    def test_a_request_nobody_takes_is_withdrawn_at_the_timeout(
        self,
        requester: LeaseRequester,
        clients: KubeClients,
        clocks: Clocks,
        kube: KubernetesEmulator,
    ) -> None:
        """A renewing daemon that never answers: LeaseBusy, and the request is removed."""
        daemon = holder_elector(clients, clocks, "daemon-1", ROLE_DAEMON)
        assert daemon.try_acquire_or_renew()
        clocks.on_sleep += [daemon.try_acquire_or_renew] * 40
        with pytest.raises(LeaseBusy, match="did not take request r1"):
            requester.claim(request("r1"), timeout=5, wait=True)
        assert REQUEST_ANNOTATION not in lease_annotations(kube)

    def test_a_refused_lease_fails_at_once(
        self, requester: LeaseRequester, kube: KubernetesEmulator, clocks: Clocks
    ) -> None:
        """No permission on the Lease: the mapped error, not a wait until the timeout."""
        kube.forbid("create", "leases")
        with pytest.raises(LeaseForbidden, match="lease default/stackstate-key-rotator"):
            requester.claim(request(), timeout=300, wait=True)
        assert clocks.monotonic == 1000.0

    def test_a_missing_namespace_fails_at_once(self, clients: KubeClients, clocks: Clocks) -> None:
        """A Lease in a namespace that does not exist cannot be created: LeaseInvalid."""
        lock = LeaseLock(clients, namespace="nowhere", name=LEASE, identity="rotate-host-1")
        requester = LeaseRequester(
            lock, TIMINGS, clock=clocks.mono, wall_clock=clocks.wall, sleep=clocks.sleep
        )
        with pytest.raises(LeaseInvalid, match="not found"):
            requester.claim(request(), timeout=300, wait=True)

    def test_an_unreachable_api_server_is_retried_until_the_timeout(
        self, requester: LeaseRequester, kube: KubernetesEmulator, clocks: Clocks
    ) -> None:
        """503s are transient: the requester keeps trying, then gives up naming the Lease."""
        kube.fail_next("*", r"/apis/coordination\.k8s\.io/.*", 503, count=None)
        with pytest.raises(
            LeaseBusy,
            match=r"cannot get leases in namespace default: API server answered 503.*"
            r"still failing after 3s",
        ):
            requester.claim(request(), timeout=3, wait=True)
        assert clocks.monotonic >= 1003.0
