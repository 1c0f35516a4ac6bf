"""Tests for the synced-secret consumer over real HTTP via the official client to the emulator."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rotator.clients.kubernetes import KubeClients
from rotator.consumers.base import Consumer, SwitchRequest, SwitchState, consumer_token
from rotator.consumers.synced_secret import SyncedSecretConsumer, map_error
from rotator.errors import ConsumerForbidden, ConsumerInvalid, ConsumerUnavailable
from rotator.secrets import Secret, register_secret
from rotator_sandbox.kubernetes import KubernetesEmulator

NAMESPACE = "apps"
NAME = "agent-key"
KEY = "api_key"
SECRET_PATH = rf"^/api/v1/namespaces/{NAMESPACE}/secrets/{NAME}$"
PUSHED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

NEW = Secret("synced-new-value-2222")
OLD = Secret("synced-old-value-1111")


def b64(data: str | bytes) -> str:
    """Base64 of text (UTF-8) or bytes, as Secret data holds it."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def seed(kube: KubernetesEmulator, data: dict[str, str | bytes]) -> None:
    """Create the Secret in-process, as the operator would have."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "type": "Opaque",
            "data": {key: b64(value) for key, value in data.items()},
        }
    )


def request(value: Secret = NEW) -> SwitchRequest:
    """A switch request for ``value`` (the value itself is not given to this consumer)."""
    return SwitchRequest("agent", value.fingerprint, PUSHED_AT)


def assert_no_value(text: str) -> None:
    """Neither key value nor its base64 form appears in ``text``."""
    for value in (NEW, OLD):
        assert value.reveal() not in text
        assert b64(value.reveal()) not in text


@pytest.fixture
def clients(kubeconfig: Path) -> Iterator[KubeClients]:
    """Clients for the ``kube`` emulator (context ``sandbox``), closed at teardown."""
    with KubeClients(kubeconfig, request_timeout=5.0) as built:
        yield built


@pytest.fixture
def consumer(clients: KubeClients) -> SyncedSecretConsumer:
    """The consumer watching ``apps/agent-key[api_key]``."""
    return SyncedSecretConsumer(clients, namespace=NAMESPACE, name=NAME, key=KEY)


def only(states: list[SwitchState]) -> SwitchState:
    """The single state a synced-secret consumer reports."""
    assert len(states) == 1
    return states[0]


class TestIdentity:
    """Identity and description."""

    def test_satisfies_the_consumer_protocol(self, consumer: SyncedSecretConsumer) -> None:
        """The consumer is a runtime-checkable Consumer."""
        assert isinstance(consumer, Consumer)

    def test_id_names_context_namespace_name_and_key(self, clients: KubeClients) -> None:
        """The id spells the context (default when unset), namespace, name and data key."""
        plain = SyncedSecretConsumer(clients, namespace="ns", name="s", key="k")
        other = SyncedSecretConsumer(clients, namespace="ns", name="s", key="k", context="prod")
        assert plain.id == "synced-secret:default/ns/s[k]"
        assert other.id == "synced-secret:prod/ns/s[k]"
        assert "ns/s" in other.describe()
        assert "prod" in other.describe()


class TestObserve:
    """Reading the synced Secret and comparing fingerprints."""

    def test_matching_fingerprint_is_switched(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """A Secret holding the new value is switched, with its fingerprint as evidence."""
        seed(kube, {KEY: NEW.reveal(), "other": OLD.reveal()})
        state = only(consumer.observe(request(), frozenset()))
        assert state.phase == "switched"
        assert state.id == consumer.id
        assert state.reason == f"synced: holds {NEW.fingerprint}"

    def test_other_value_is_pending_with_its_fingerprint(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """A Secret still holding the old value is pending, naming the old fingerprint only."""
        seed(kube, {KEY: OLD.reveal()})
        state = only(consumer.observe(request(), frozenset()))
        assert state.phase == "pending"
        assert f"still holds {OLD.fingerprint}" in state.reason
        assert_no_value(state.reason)

    def test_missing_secret_is_pending(self, consumer: SyncedSecretConsumer) -> None:
        """A Secret the operator has not created yet is pending, not an error."""
        state = only(consumer.observe(request(), frozenset()))
        assert state.phase == "pending"
        assert state.reason.startswith("not synced yet")

    def test_missing_key_is_pending(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """A Secret without the data key is pending."""
        seed(kube, {"other": NEW.reveal()})
        state = only(consumer.observe(request(), frozenset()))
        assert state.phase == "pending"
        assert state.reason.startswith("not synced yet")

    def test_empty_value_is_pending(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """An empty data key is pending (not synced yet)."""
        seed(kube, {KEY: ""})
        state = only(consumer.observe(request(), frozenset()))
        assert state.phase == "pending"
        assert state.reason.startswith("not synced yet")

    def test_binary_value_is_pending(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """A value that is not UTF-8 text cannot be ours and is pending."""
        seed(kube, {KEY: b"\xff\xfe\x00binary"})
        state = only(consumer.observe(request(), frozenset()))
        assert state.phase == "pending"
        assert "not UTF-8" in state.reason

    def test_done_list_is_not_evidence(self, consumer: SyncedSecretConsumer) -> None:
        """A recorded token does not make a Secret that lacks the value switched."""
        done = frozenset({consumer_token(consumer.id)})
        assert only(consumer.observe(request(), done)).phase == "pending"

    def test_observe_only_reads(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """Observing sends GET requests only, so it is safe in a dry-run."""
        seed(kube, {KEY: OLD.reveal()})
        consumer.observe(request(), frozenset())
        assert kube.mutating_requests() == []

    def test_never_needs_a_trigger(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """No observed state asks for a trigger: the operator does the syncing."""
        phases = {only(consumer.observe(request(), frozenset())).phase}
        seed(kube, {KEY: OLD.reveal()})
        phases.add(only(consumer.observe(request(), frozenset())).phase)
        seed(kube, {KEY: NEW.reveal()})
        phases.add(only(consumer.observe(request(), frozenset())).phase)
        assert phases == {"pending", "switched"}


class TestTrigger:
    """Triggering acts on nothing."""

    def test_trigger_returns_the_state_unchanged(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """trigger sends no request and returns the state it was given."""
        state = SwitchState(consumer.id, "pending", "not synced yet")
        assert consumer.trigger(state, [request()]) is state
        assert kube.log == []


class TestErrors:
    """Failures reading the Secret, through the official client."""

    def test_forbidden_read_is_forbidden(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer
    ) -> None:
        """An RBAC 403 on GET is ConsumerForbidden naming the call, without a value."""
        seed(kube, {KEY: OLD.reveal()})
        kube.forbid("get", "secrets", NAMESPACE)
        with pytest.raises(ConsumerForbidden) as caught:
            consumer.observe(request(), frozenset())
        text = str(caught.value)
        assert f"get secrets in namespace {NAMESPACE}" in text
        assert text.startswith(consumer.id)
        assert not caught.value.retryable
        assert_no_value(text)

    @pytest.mark.parametrize("status", [500, 503, 429])
    def test_server_errors_are_unavailable(
        self, kube: KubernetesEmulator, consumer: SyncedSecretConsumer, status: int
    ) -> None:
        """5xx and 429 answers are ConsumerUnavailable (temporary), without a value."""
        seed(kube, {KEY: OLD.reveal()})
        kube.fail_next("GET", SECRET_PATH, status)
        with pytest.raises(ConsumerUnavailable, match=f"answered {status}") as caught:
            consumer.observe(request(), frozenset())
        assert caught.value.retryable
        assert caught.value.__cause__ is None
        assert_no_value(str(caught.value))

    def test_connection_refused_is_unavailable(
        self, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
    ) -> None:
        """An API server that is not listening is ConsumerUnavailable."""
        emulator = make_kube()
        path = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        emulator.stop()
        with KubeClients(path, request_timeout=2.0) as clients:
            consumer = SyncedSecretConsumer(clients, namespace=NAMESPACE, name=NAME, key=KEY)
            with pytest.raises(ConsumerUnavailable, match="cannot connect"):
                consumer.observe(request(), frozenset())

    def test_slow_api_server_times_out(self, kube: KubernetesEmulator, kubeconfig: Path) -> None:
        """A GET unanswered within the request timeout is ConsumerUnavailable naming it."""
        kube.add_latency("GET", SECRET_PATH, 1.0, count=3)
        with KubeClients(kubeconfig, request_timeout=0.2) as clients:
            consumer = SyncedSecretConsumer(clients, namespace=NAMESPACE, name=NAME, key=KEY)
            with pytest.raises(ConsumerUnavailable, match=r"no answer within 0\.2s"):
                consumer.observe(request(), frozenset())


def api_exception(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """An ApiException as the client raises it for an answer with that status and body."""
    exc = ApiException(status=status, reason="Reason")
    exc.body = body if body is None or isinstance(body, str) else json.dumps(body)
    exc.headers = headers
    return exc


def mapped(exc: BaseException) -> Exception:
    """``map_error`` with fixed context."""
    return map_error(exc, where="c", verb="get", namespace="ns", timeout=1.0)


class TestMapError:
    """The one translation of client failures: every failure has a class, no body leaks."""

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (0, ConsumerUnavailable),
            (400, ConsumerInvalid),
            (401, ConsumerForbidden),
            (403, ConsumerForbidden),
            (410, ConsumerInvalid),
            (429, ConsumerUnavailable),
            (500, ConsumerUnavailable),
            (502, ConsumerUnavailable),
            (503, ConsumerUnavailable),
            (504, ConsumerUnavailable),
        ],
    )
    def test_every_status_is_mapped(self, status: int, expected: type[Exception]) -> None:
        """Each HTTP status becomes the class the module docstring lists."""
        assert type(mapped(api_exception(status))) is expected

    @pytest.mark.parametrize(
        "exc",
        [
            urllib3.exceptions.MaxRetryError(
                None,  # type: ignore[arg-type]  # urllib3 accepts a missing pool in messages
                "/api",
                urllib3.exceptions.NewConnectionError(None, "refused"),  # type: ignore[arg-type]  # same
            ),
            urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out"),  # type: ignore[arg-type]  # same
            urllib3.exceptions.ProtocolError("Connection aborted."),
            urllib3.exceptions.SSLError("bad handshake"),
        ],
    )
    def test_transport_failures_are_unavailable(self, exc: Exception) -> None:
        """urllib3 failures below HTTP are ConsumerUnavailable."""
        assert isinstance(mapped(exc), ConsumerUnavailable)

    def test_credential_refresh_failure_is_forbidden(self) -> None:
        """A kubeconfig credential plugin failing at call time needs a human."""
        assert isinstance(mapped(ConfigException("exec plugin failed")), ConsumerForbidden)

    def test_response_body_is_never_quoted(self) -> None:
        """Only the Status message is quoted; other body content (Secret data) never is."""
        body = {"kind": "Secret", "data": {KEY: b64(NEW.reveal())}, "message": NEW.reveal()}
        text = str(mapped(api_exception(500, body)))
        assert_no_value(text)

    def test_status_message_is_redacted(self) -> None:
        """A registered value inside a Status message is masked."""
        # Other tests reset the process-wide registry; register this value here explicitly.
        register_secret(NEW.reveal())
        body = {"kind": "Status", "message": f"bad value {NEW.reveal()}", "code": 403}
        text = str(mapped(api_exception(403, body)))
        assert "bad value" in text
        assert_no_value(text)

    def test_retry_after_becomes_delay(self) -> None:
        """A Retry-After header on 429 becomes the error's delay."""
        error = mapped(api_exception(429, headers={"Retry-After": "3"}))
        assert isinstance(error, ConsumerUnavailable)
        assert error.delay == 3.0
