"""Tests for the kubernetes-secret target over real HTTP via the official client to the emulator."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rotator.clients.kubernetes import KubeClients
from rotator.errors import (
    TargetConflict,
    TargetForbidden,
    TargetInvalid,
    TargetUnavailable,
)
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata, Target
from rotator.targets.kubernetes import (
    KEYS_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    KubernetesSecretTarget,
    map_error,
)
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.kubernetes_errors import not_found

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NAMESPACE = "monitoring"
NAME = "sts-agent-secrets"
PREFIX = "rotator.stackstate.io/"
SECRET_PATH = rf"^/api/v1/namespaces/{NAMESPACE}/secrets/{NAME}$"
COLLECTION_PATH = rf"^/api/v1/namespaces/{NAMESPACE}/secrets$"

OLD = Secret("old-value-aaaa-0001")
NEW = Secret("new-value-bbbb-0002")
NEWER = Secret("newer-value-cccc-0003")


def meta(value: Secret, key_id: int = 7, previous: int | None = None) -> KeyMetadata:
    """Metadata describing ``value``."""
    return KeyMetadata(
        key_id=key_id,
        key_name=f"agent-{key_id}",
        kind="service-token",
        fingerprint=value.fingerprint,
        expires_at=NOW,
        rotated_at=NOW,
        previous_key_id=previous,
    )


def b64(text: str) -> str:
    """Base64 of UTF-8 text, as Secret data holds it."""
    return base64.b64encode(text.encode()).decode()


def seed(kube: KubernetesEmulator, data: dict[str, str], **metadata: Any) -> dict[str, Any]:
    """Create the Secret in-process (as kubectl or Helm would have), data given as text."""
    return kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": NAME, "namespace": NAMESPACE, **metadata},
            "type": "Opaque",
            "data": {key: b64(value) for key, value in data.items()},
        }
    )


def stored_annotations(kube: KubernetesEmulator, name: str = NAME) -> dict[str, str]:
    """The stored Secret's annotations."""
    secret = kube.get("secrets", NAMESPACE, name)
    assert secret is not None
    return dict(secret["metadata"].get("annotations") or {})


def record(kube: KubernetesEmulator) -> dict[str, Any]:
    """The parsed ``rotator.stackstate.io/keys`` annotation."""
    parsed: dict[str, Any] = json.loads(stored_annotations(kube)[KEYS_ANNOTATION])
    return parsed


def assert_no_value(exc: BaseException, *values: Secret) -> None:
    """Neither a value nor its base64 form appears in the error's text."""
    text = str(exc)
    for value in values:
        assert value.reveal() not in text
        assert b64(value.reveal()) not in text


@pytest.fixture
def clients(kube: KubernetesEmulator, kubeconfig: Path) -> Iterator[KubeClients]:
    """Clients for the ``kube`` emulator (context ``sandbox``, namespace :data:`NAMESPACE`
    created), closed at teardown."""
    kube.create_namespace(NAMESPACE)
    with KubeClients(kubeconfig, request_timeout=5.0) as built:
        yield built


@pytest.fixture
def make_target(clients: KubeClients) -> Callable[..., KubernetesSecretTarget]:
    """Factory of targets on the ``kube`` emulator; conflict backoff off to keep tests fast."""

    def make(key: str = "STS_API_KEY", **kwargs: Any) -> KubernetesSecretTarget:
        options: dict[str, Any] = {"namespace": NAMESPACE, "name": NAME, "conflict_backoff": 0.0}
        options.update(kwargs)
        return KubernetesSecretTarget(clients, key=key, **options)

    return make


@pytest.fixture
def target(make_target: Callable[..., KubernetesSecretTarget]) -> KubernetesSecretTarget:
    """The target ``monitoring/sts-agent-secrets[STS_API_KEY]``."""
    return make_target()


class TestIdentity:
    """Id and description."""

    def test_satisfies_the_target_protocol(self, target: KubernetesSecretTarget) -> None:
        """The class implements the Target Protocol."""
        assert isinstance(target, Target)

    def test_id_names_context_namespace_name_and_key(self, clients: KubeClients) -> None:
        """The id is kubernetes-secret:context/namespace/name[key], context 'default' if unset."""
        plain = KubernetesSecretTarget(clients, namespace="ns", name="s", key="API_KEY")
        other = KubernetesSecretTarget(clients, namespace="ns", name="s", key="K", context="prod")
        assert plain.id == "kubernetes-secret:default/ns/s[API_KEY]"
        assert other.id == "kubernetes-secret:prod/ns/s[K]"
        assert other.describe() == "Kubernetes Secret ns/s key K (context prod)"

    def test_id_names_the_configured_default_context(self, kubeconfig: Path) -> None:
        """A target without its own context is named by the configured default context, as the
        workload consumers are, so one cluster has one name in a plan (issue 13)."""
        from rotator.consumers.kubernetes_workload import KubernetesWorkloadConsumer

        with KubeClients(kubeconfig, "sandbox", request_timeout=5.0) as clients:
            target = KubernetesSecretTarget(clients, namespace="ns", name="s", key="K")
            consumer = KubernetesWorkloadConsumer(
                clients, namespace="ns", kind="Deployment", name="d"
            )
            assert target.id == "kubernetes-secret:sandbox/ns/s[K]"
            assert consumer.id.startswith("kubernetes-workload:sandbox/")

    def test_invalid_data_key_is_refused(self, clients: KubeClients) -> None:
        """A data key Kubernetes would reject is a TargetInvalid before any request."""
        with pytest.raises(TargetInvalid, match="data key"):
            KubernetesSecretTarget(clients, namespace="ns", name="s", key="not valid")


class TestRead:
    """Reading the value and our metadata."""

    def test_missing_secret_reads_as_nothing(self, target: KubernetesSecretTarget) -> None:
        """A Secret that does not exist reads as no value, no metadata, no version."""
        state = target.read()
        assert (state.value, state.metadata, state.version) == (None, None, None)

    def test_missing_data_key_reads_as_nothing(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """A Secret without our data key reads as no value, with the Secret's version."""
        stored = seed(kube, {"OTHER": "x"})
        state = target.read()
        assert state.value is None
        assert state.version == stored["metadata"]["resourceVersion"]

    def test_value_is_the_exact_decoded_text(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """The value is the base64-decoded data, whitespace included."""
        seed(kube, {"STS_API_KEY": "  spaced-value-01\n"})
        state = target.read()
        assert state.value == Secret("  spaced-value-01\n")

    def test_non_utf8_value_is_invalid(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """Binary data under our key raises TargetInvalid, without the value."""
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": NAME, "namespace": NAMESPACE},
                "data": {"STS_API_KEY": base64.b64encode(b"\xff\xfe-binary").decode()},
            }
        )
        with pytest.raises(TargetInvalid, match="not UTF-8") as caught:
            target.read()
        assert "binary" not in str(caught.value)

    def test_damaged_record_reads_as_adopted(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """An unparsable keys annotation only costs the metadata."""
        seed(kube, {"STS_API_KEY": OLD.reveal()}, annotations={KEYS_ANNOTATION: "{not json"})
        state = target.read()
        assert state.value == OLD
        assert state.metadata is None

    def test_read_relies_only_on_the_json_record(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """Hand-edited flat annotations do not change the metadata read."""
        target.write(NEW, meta(NEW, key_id=7))
        stored = kube.get("secrets", NAMESPACE, NAME)
        assert stored is not None
        stored["metadata"]["annotations"][f"{PREFIX}key-id"] = "999"
        kube.apply(stored)
        state = target.read()
        assert state.managed_metadata is not None
        assert state.managed_metadata.key_id == 7


class TestOwnership:
    """read() says who else owns the Secret, so the plan can refuse to write it."""

    @pytest.mark.parametrize(
        ("metadata", "owner"),
        [
            ({"labels": {"app.kubernetes.io/managed-by": "Helm"}}, "Helm release"),
            ({"annotations": {"meta.helm.sh/release-name": "agent"}}, "Helm release agent"),
            ({"annotations": {"argocd.argoproj.io/tracking-id": "app:/Secret:x"}}, "Argo CD"),
            ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}, "Flux"),
            ({"labels": {"helm.toolkit.fluxcd.io/name": "agent"}}, "Flux"),
            (
                {
                    "ownerReferences": [
                        {
                            "apiVersion": "external-secrets.io/v1beta1",
                            "kind": "ExternalSecret",
                            "name": "agent",
                            "uid": "6f1c2f0e-3d0b-4b7e-9d35-0c3f2d6a1b2c",
                        }
                    ]
                },
                "ExternalSecret agent (ownerReferences)",
            ),
        ],
    )
    def test_foreign_owners_are_named(
        self,
        kube: KubernetesEmulator,
        target: KubernetesSecretTarget,
        metadata: dict[str, Any],
        owner: str,
    ) -> None:
        """Helm, Argo CD, Flux and owner references are recognised from the object itself."""
        seed(kube, {"STS_API_KEY": "v"}, **metadata)
        state = target.read()
        assert state.owner is not None
        assert owner in state.owner
        assert state.owner_allowed is False

    def test_own_and_plain_secrets_have_no_owner(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """A Secret labelled as the rotator's, or by nobody, is ours to write."""
        seed(kube, {"STS_API_KEY": "v"}, labels={"app.kubernetes.io/managed-by": MANAGED_BY})
        assert target.read().owner is None

    def test_configured_labels_mark_an_owner_and_the_override_is_reported(
        self, kube: KubernetesEmulator, make_target: Callable[..., KubernetesSecretTarget]
    ) -> None:
        """foreign_owner_labels adds owners; allow_foreign_owner is carried to the plan."""
        seed(kube, {"STS_API_KEY": "v"}, labels={"argocd.argoproj.io/instance": "agents"})
        assert make_target().read().owner is None
        marked = make_target(
            foreign_owner_labels=("argocd.argoproj.io/instance",), allow_foreign_owner=True
        ).read()
        assert marked.owner is not None
        assert "argocd.argoproj.io/instance=agents" in marked.owner
        assert marked.owner_allowed is True


class TestWrite:
    """Writing the value and metadata with read-modify-replace."""

    def test_bootstrap_creates_a_labelled_opaque_secret(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """A missing Secret is created with our label, type Opaque, the value and annotations."""
        target.write(NEW, meta(NEW))
        stored = kube.get("secrets", NAMESPACE, NAME)
        assert stored is not None
        assert stored["type"] == "Opaque"
        assert stored["metadata"]["labels"] == {MANAGED_BY_LABEL: MANAGED_BY}
        assert kube.secret_data(NAMESPACE, NAME) == {"STS_API_KEY": NEW.reveal()}
        assert "stringData" not in stored
        state = target.read()
        assert state.value == NEW
        assert state.managed_metadata == meta(NEW)
        assert state.version == stored["metadata"]["resourceVersion"]

    def test_update_keeps_everything_else(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """Other data keys, labels, annotations, the type and owner references survive."""
        owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1"}
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": NAME,
                    "namespace": NAMESPACE,
                    "labels": {"app.kubernetes.io/managed-by": "Helm", "team": "obs"},
                    "annotations": {"meta.helm.sh/release-name": "agent"},
                    "ownerReferences": [owner],
                },
                "type": "example.com/agent",
                "data": {"STS_API_KEY": b64(OLD.reveal()), "OTHER": b64("unrelated")},
            }
        )
        target.write(NEW, meta(NEW))
        stored = kube.get("secrets", NAMESPACE, NAME)
        assert stored is not None
        assert kube.secret_data(NAMESPACE, NAME) == {
            "STS_API_KEY": NEW.reveal(),
            "OTHER": "unrelated",
        }
        assert stored["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "Helm",
            "team": "obs",
        }
        assert stored["metadata"]["annotations"]["meta.helm.sh/release-name"] == "agent"
        assert stored["metadata"]["ownerReferences"] == [owner]
        assert stored["type"] == "example.com/agent"

    def test_update_replaces_with_the_resource_version_read(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """The update is a PUT carrying the resourceVersion of the preceding GET."""
        stored = seed(kube, {"STS_API_KEY": OLD.reveal()})
        target.write(NEW, meta(NEW))
        puts = [entry for entry in kube.log if entry.method == "PUT"]
        assert len(puts) == 1
        sent = json.loads(puts[0].body)
        assert sent["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
        assert "stringData" not in sent

    def test_write_keeps_current_and_previous_entries(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """The record holds the new and the replaced value's entries, and drops older ones."""
        target.write(OLD, meta(OLD, key_id=1))
        target.write(NEW, meta(NEW, key_id=2, previous=1))
        assert set(record(kube)["STS_API_KEY"]) == {OLD.fingerprint, NEW.fingerprint}
        target.write(NEWER, meta(NEWER, key_id=3, previous=2))
        assert set(record(kube)["STS_API_KEY"]) == {NEW.fingerprint, NEWER.fingerprint}
        assert target.read().managed_metadata == meta(NEWER, key_id=3, previous=2)

    def test_flat_annotations_describe_a_single_managed_key(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """With one managed data key the flat annotations are unsuffixed and human-readable."""
        target.write(OLD, meta(OLD, key_id=1))
        target.write(NEW, meta(NEW, key_id=2, previous=1))
        flat = {k: v for k, v in stored_annotations(kube).items() if k != KEYS_ANNOTATION}
        assert flat == {
            f"{PREFIX}key-id": "2",
            f"{PREFIX}key-name": "agent-2",
            f"{PREFIX}expires-at": "2026-11-26T12:00:00Z",
            f"{PREFIX}fingerprint": NEW.fingerprint,
            f"{PREFIX}rotated-at": "2026-11-26T12:00:00Z",
            f"{PREFIX}previous-key-id": "1",
        }

    def test_two_managed_keys_keep_both_entries(
        self, kube: KubernetesEmulator, make_target: Callable[..., KubernetesSecretTarget]
    ) -> None:
        """Two data keys of one Secret keep their own metadata; flat names get the data key."""
        agent = make_target("STS_API_KEY")
        cluster = make_target("CLUSTER_AGENT_KEY")
        agent.write(OLD, meta(OLD, key_id=1))
        cluster.write(NEW, meta(NEW, key_id=2))
        assert agent.read().managed_metadata == meta(OLD, key_id=1)
        assert cluster.read().managed_metadata == meta(NEW, key_id=2)
        assert set(record(kube)) == {"STS_API_KEY", "CLUSTER_AGENT_KEY"}
        found = stored_annotations(kube)
        assert found[f"{PREFIX}key-id.STS_API_KEY"] == "1"
        assert found[f"{PREFIX}key-id.CLUSTER_AGENT_KEY"] == "2"
        assert f"{PREFIX}key-id" not in found

    def test_data_key_too_long_for_a_flat_name_keeps_only_the_record(
        self, kube: KubernetesEmulator, make_target: Callable[..., KubernetesSecretTarget]
    ) -> None:
        """A data key that cannot make a valid annotation name gets no flat annotations."""
        long_key = "K" * 60
        make_target("STS_API_KEY").write(OLD, meta(OLD, key_id=1))
        make_target(long_key).write(NEW, meta(NEW, key_id=2))
        found = stored_annotations(kube)
        assert all(long_key not in name for name in found)
        assert found[f"{PREFIX}key-id.STS_API_KEY"] == "1"
        assert make_target(long_key).read().managed_metadata == meta(NEW, key_id=2)

    def test_conflict_is_retried_with_a_fresh_read(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """A 409 from a concurrent writer is re-read and re-applied until the PUT wins."""
        seed(kube, {"STS_API_KEY": OLD.reveal(), "OTHER": "x"})
        kube.conflict_next_update("secrets", NAMESPACE, NAME, count=2)
        target.write(NEW, meta(NEW))
        statuses = [(e.method, e.status) for e in kube.log if e.method in ("GET", "PUT")]
        assert statuses == [
            ("GET", 200),
            ("PUT", 409),
            ("GET", 200),
            ("PUT", 409),
            ("GET", 200),
            ("PUT", 200),
        ]
        assert kube.secret_data(NAMESPACE, NAME) == {"STS_API_KEY": NEW.reveal(), "OTHER": "x"}

    def test_persistent_conflict_is_a_target_conflict(
        self, kube: KubernetesEmulator, make_target: Callable[..., KubernetesSecretTarget]
    ) -> None:
        """When every attempt meets a 409, TargetConflict (temporary) is raised; nothing changed."""
        seed(kube, {"STS_API_KEY": OLD.reveal()})
        kube.conflict_next_update("secrets", NAMESPACE, NAME, count=10)
        target = make_target(conflict_attempts=3)
        with pytest.raises(TargetConflict, match="409") as caught:
            target.write(NEW, meta(NEW))
        assert caught.value.retryable
        assert_no_value(caught.value, NEW, OLD)
        assert [e.status for e in kube.log if e.method == "PUT"] == [409, 409, 409]
        assert kube.secret_data(NAMESPACE, NAME) == {"STS_API_KEY": OLD.reveal()}

    def test_concurrent_create_falls_through_to_update(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """A Secret created by someone else after our GET (409 AlreadyExists) is updated."""
        seed(kube, {"OTHER": "theirs"})
        # Our first GET answers 404 as it would have just before the other writer's create.
        kube.fail_next("GET", SECRET_PATH, 404, body=not_found("", "secrets", NAME).status())
        target.write(NEW, meta(NEW))
        assert [(e.method, e.status) for e in kube.log] == [
            ("GET", 404),
            ("POST", 409),
            ("GET", 200),
            ("PUT", 200),
        ]
        assert kube.secret_data(NAMESPACE, NAME) == {"OTHER": "theirs", "STS_API_KEY": NEW.reveal()}

    def test_missing_namespace_is_invalid(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """The API server's 404 for a missing namespace on create is TargetInvalid naming it."""
        body = not_found("", "namespaces", NAMESPACE).status()
        kube.fail_next("POST", COLLECTION_PATH, 404, body=body)
        with pytest.raises(TargetInvalid, match=f"namespace {NAMESPACE} not found") as caught:
            target.write(NEW, meta(NEW))
        assert_no_value(caught.value, NEW)

    def test_immutable_secret_is_invalid(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """An immutable Secret is refused before any update is sent."""
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": NAME, "namespace": NAMESPACE},
                "immutable": True,
                "data": {"STS_API_KEY": b64(OLD.reveal())},
            }
        )
        with pytest.raises(TargetInvalid, match="immutable"):
            target.write(NEW, meta(NEW))
        assert not [e for e in kube.log if e.method == "PUT"]

    def test_rejected_update_is_invalid(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """A 422 Invalid answer is TargetInvalid quoting the Status message, not the body."""
        seed(kube, {"STS_API_KEY": OLD.reveal()})
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'Secret "sts-agent-secrets" is invalid: metadata.annotations: Too long',
            "reason": "Invalid",
            "details": {"name": NAME, "kind": "Secret"},
            "code": 422,
        }
        kube.fail_next("PUT", SECRET_PATH, 422, body=status)
        with pytest.raises(TargetInvalid, match="422 Invalid") as caught:
            target.write(NEW, meta(NEW))
        assert "metadata.annotations: Too long" in str(caught.value)
        assert_no_value(caught.value, NEW, OLD)

    def test_client_logs_never_hold_the_value(
        self,
        kube: KubernetesEmulator,
        target: KubernetesSecretTarget,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Even at DEBUG, the client's and urllib3's log records carry no value nor its base64."""
        caplog.set_level(logging.DEBUG)
        target.write(NEW, meta(NEW))
        target.read()
        assert caplog.records  # urllib3 did log the requests (method and path only)
        for value in (NEW.reveal(), b64(NEW.reveal())):
            assert value not in caplog.text


class TestWriteMetadata:
    """Updating only our metadata."""

    def test_metadata_round_trip(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """write_metadata replaces the entry of the held value; the value is untouched."""
        target.write(NEW, meta(NEW, key_id=2, previous=1))
        before = kube.get("secrets", NAMESPACE, NAME)
        revoked = KeyMetadata(
            key_id=2,
            key_name="agent-2",
            kind="service-token",
            fingerprint=NEW.fingerprint,
            expires_at=NOW,
            rotated_at=NOW,
            previous_key_id=1,
            previous_key_name="agent-1",
            previous_revoked=True,
        )
        target.write_metadata(revoked)
        state = target.read()
        assert state.value == NEW
        assert state.managed_metadata == revoked
        after = kube.get("secrets", NAMESPACE, NAME)
        assert before is not None
        assert after is not None
        assert after["data"] == before["data"]
        assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]

    def test_metadata_update_retries_conflicts(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """A 409 during a metadata update is retried like a value write."""
        target.write(NEW, meta(NEW))
        kube.conflict_next_update("secrets", NAMESPACE, NAME, count=1)
        target.write_metadata(meta(NEW, key_id=99))
        assert target.read().managed_metadata == meta(NEW, key_id=99)

    def test_missing_secret_is_invalid(self, target: KubernetesSecretTarget) -> None:
        """Metadata for a Secret that vanished is TargetInvalid; nothing is created."""
        with pytest.raises(TargetInvalid, match="not found"):
            target.write_metadata(meta(NEW))


class TestErrors:
    """Failures of the API server or the connection, through the official client."""

    def test_forbidden_read_names_verb_resource_namespace(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """An RBAC 403 on GET is TargetForbidden naming get, secrets and the namespace."""
        kube.forbid("get", "secrets", NAMESPACE)
        with pytest.raises(TargetForbidden) as caught:
            target.read()
        text = str(caught.value)
        assert f"get secrets in namespace {NAMESPACE}" in text
        assert "system:anonymous" in text  # the API server's own message is quoted
        assert not caught.value.retryable

    def test_forbidden_update_is_forbidden(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget
    ) -> None:
        """An RBAC 403 on PUT is TargetForbidden naming update, without the value."""
        seed(kube, {"STS_API_KEY": OLD.reveal()})
        kube.forbid("update", "secrets", NAMESPACE)
        with pytest.raises(TargetForbidden, match="update secrets") as caught:
            target.write(NEW, meta(NEW))
        assert_no_value(caught.value, NEW, OLD)

    def test_rejected_token_is_forbidden(
        self, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
    ) -> None:
        """A token the API server does not accept (401) is TargetForbidden."""
        emulator = make_kube(token="right-token-123")
        path = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        path.write_text(path.read_text().replace("right-token-123", "wrong-token-456"))
        with KubeClients(path, request_timeout=5.0) as clients:
            target = KubernetesSecretTarget(clients, namespace=NAMESPACE, name=NAME, key="K")
            with pytest.raises(TargetForbidden, match="401") as caught:
                target.read()
        assert "wrong-token-456" not in str(caught.value)

    @pytest.mark.parametrize("status", [500, 503, 429])
    def test_server_errors_are_unavailable(
        self, kube: KubernetesEmulator, target: KubernetesSecretTarget, status: int
    ) -> None:
        """5xx and 429 answers are TargetUnavailable (temporary)."""
        seed(kube, {"STS_API_KEY": OLD.reveal()})
        kube.fail_next("PUT", SECRET_PATH, status)
        with pytest.raises(TargetUnavailable, match=f"answered {status}") as caught:
            target.write(NEW, meta(NEW))
        assert caught.value.retryable
        assert_no_value(caught.value, NEW, OLD)
        if status in (429, 503):
            assert caught.value.delay == 1.0  # the emulator's Retry-After

    def test_connection_refused_is_unavailable(
        self, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
    ) -> None:
        """An API server that is not listening is TargetUnavailable."""
        emulator = make_kube()
        path = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        emulator.stop()
        with KubeClients(path, request_timeout=2.0) as clients:
            target = KubernetesSecretTarget(clients, namespace=NAMESPACE, name=NAME, key="K")
            with pytest.raises(TargetUnavailable, match="cannot connect") as caught:
                target.write(NEW, meta(NEW))
        assert_no_value(caught.value, NEW)

    def test_slow_api_server_times_out(self, kube: KubernetesEmulator, kubeconfig: Path) -> None:
        """A GET unanswered within the request timeout is TargetUnavailable naming the timeout."""
        kube.add_latency("GET", SECRET_PATH, 1.0, count=3)
        with KubeClients(kubeconfig, request_timeout=0.2) as clients:
            target = KubernetesSecretTarget(clients, namespace=NAMESPACE, name=NAME, key="K")
            with pytest.raises(TargetUnavailable, match=r"no answer within 0\.2s"):
                target.read()


def api_exception(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """An ApiException as the client raises it for an answer with that status and body."""
    exc = ApiException(status=status, reason="Reason")
    exc.body = body if body is None or isinstance(body, str) else json.dumps(body)
    exc.headers = headers
    return exc


class TestMapError:
    """The one translation of client failures: every failure has a class, no body leaks."""

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (0, TargetUnavailable),
            (400, TargetInvalid),
            (401, TargetForbidden),
            (403, TargetForbidden),
            (404, TargetInvalid),
            (405, TargetInvalid),
            (409, TargetConflict),
            (410, TargetInvalid),
            (422, TargetInvalid),
            (429, TargetUnavailable),
            (500, TargetUnavailable),
            (502, TargetUnavailable),
            (503, TargetUnavailable),
            (504, TargetUnavailable),
        ],
    )
    def test_every_status_is_mapped(self, status: int, expected: type[Exception]) -> None:
        """Each HTTP status becomes the class the module docstring lists."""
        error = map_error(
            api_exception(status),
            where="t",
            verb="get",
            resource="secrets",
            namespace="ns",
            timeout=1.0,
        )
        assert type(error) is expected

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
        """urllib3 failures below HTTP are TargetUnavailable."""
        error = map_error(exc, where="t", verb="get", resource="secrets", namespace="n", timeout=1)
        assert isinstance(error, TargetUnavailable)

    def test_credential_refresh_failure_is_forbidden(self) -> None:
        """A kubeconfig credential plugin failing at call time needs a human."""
        error = map_error(
            ConfigException("exec plugin failed"),
            where="t",
            verb="get",
            resource="secrets",
            namespace="n",
            timeout=1,
        )
        assert isinstance(error, TargetForbidden)

    def test_bodies_that_are_not_status_are_never_quoted(self) -> None:
        """A non-Status error body (a proxy echoing the request) never reaches the message."""
        echoed = f'{{"data": {{"STS_API_KEY": "{b64(NEW.reveal())}"}}}}'
        error = map_error(
            api_exception(502, echoed),
            where="t",
            verb="update",
            resource="secrets",
            namespace="n",
            timeout=1,
        )
        assert_no_value(error, NEW)

    def test_status_messages_are_redacted(self) -> None:
        """A registered value inside a Status message is masked."""
        status = {"kind": "Status", "message": f"bad value {NEW.reveal()}", "reason": "Invalid"}
        error = map_error(
            api_exception(422, status),
            where="t",
            verb="update",
            resource="secrets",
            namespace="n",
            timeout=1,
        )
        assert_no_value(error, NEW)
        assert "bad value" in str(error)


class TestManyClusters:
    """One rotator, several clusters through kubeconfig contexts."""

    def test_each_context_writes_to_its_own_cluster(
        self, make_kube: Callable[..., KubernetesEmulator], tmp_path: Path
    ) -> None:
        """Targets naming contexts east and west write to the emulator behind each."""
        east = make_kube()
        west = make_kube()
        for cluster in (east, west):
            cluster.create_namespace(NAMESPACE)
        path = east.write_kubeconfig(
            tmp_path / "kubeconfig", context="east", extra_contexts={"west": west}
        )
        with KubeClients(path, request_timeout=5.0) as clients:
            on_east = KubernetesSecretTarget(
                clients, namespace=NAMESPACE, name=NAME, key="K", context="east"
            )
            on_west = KubernetesSecretTarget(
                clients, namespace=NAMESPACE, name=NAME, key="K", context="west"
            )
            on_east.write(OLD, meta(OLD, key_id=1))
            on_west.write(NEW, meta(NEW, key_id=2))
            assert on_east.read().managed_metadata == meta(OLD, key_id=1)
            assert on_west.read().managed_metadata == meta(NEW, key_id=2)
        assert east.secret_data(NAMESPACE, NAME) == {"K": OLD.reveal()}
        assert west.secret_data(NAMESPACE, NAME) == {"K": NEW.reveal()}
