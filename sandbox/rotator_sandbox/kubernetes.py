"""An emulated Kubernetes API server for tests and the sandbox: real kubectl and the official
Python client work against it over HTTP (or HTTPS with a bearer token).

Served:

- core/v1 ``secrets`` and ``namespaces``; apps/v1 ``deployments``, ``daemonsets``,
  ``statefulsets``; batch/v1 ``jobs`` and ``cronjobs`` (plus ``GET .../status``);
  coordination.k8s.io/v1 ``leases``; core/v1 ``events`` (decoded, validated and selected like
  the real server's, see :mod:`rotator_sandbox.kubernetes_events`).
- Verbs get, list, watch, create (POST), update (PUT), patch (strategic merge, JSON merge,
  JSON patch) and delete, with ``labelSelector``, ``fieldSelector``, ``limit``/``continue``,
  ``dryRun=All`` and ``Table`` output for ``kubectl get``.
- The create-only reviews: authorization.k8s.io/v1 ``selfsubjectaccessreviews`` (``kubectl auth
  can-i``; the verdict comes from the same :meth:`KubernetesEmulator.forbid` rules as real 403s)
  and authentication.k8s.io/v1 ``tokenreviews`` for the service-account tokens the emulator issues
  (:meth:`KubernetesEmulator.issue_service_account_token`, see
  :mod:`rotator_sandbox.kubernetes_tokens`), which is what Vault's/OpenBao's ``kubernetes`` auth
  method calls.
- Discovery (``/version``, ``/api``, ``/apis``, group-version resource lists) and a minimal
  ``/openapi/v3`` so kubectl's field validation works without flags (see
  :mod:`rotator_sandbox.kubernetes_resources`).

Semantics reproduced from the real server: one global, increasing ``resourceVersion`` that
changes on every write (and not on a no-op update); optimistic concurrency (a PUT or patch
carrying a stale ``resourceVersion`` gets the documented 409 Conflict; a PUT without one is
unconditional); ``metadata.generation`` on workloads, Jobs and CronJobs; a Job's generated
selector; ``uid``/``creationTimestamp``; Secret
``data`` base64 checks and write-only ``stringData``; Lease ``MicroTime`` parsing; ``Status``
failure bodies exactly as ``k8s.io/apimachinery/pkg/api/errors`` builds them (see
:mod:`rotator_sandbox.kubernetes_errors`). Workload status is written by a simulated controller
(:mod:`rotator_sandbox.kubernetes_controller`) computed lazily from the injected clock, so no
background thread runs and tests move time by hand.

Authentication: with ``token`` set every request must carry ``Authorization: Bearer <token>``
or a service-account token the emulator issued (else 401); with ``token=None`` anonymous requests
are served, as the API server's old insecure port did (kubectl never sends a token over plain
HTTP), and an issued service-account token still authenticates as its service account. The user
a request authenticates as is the one 403 messages name. ``forbid`` arms RBAC-like 403s.

Namespaces are as strict as on a real cluster: ``default``, ``kube-system``, ``kube-public`` and
``kube-node-lease`` always exist, others are created with ``POST /api/v1/namespaces`` (``kubectl
create namespace``), and a create in a missing namespace — including a PUT that would create a
Lease — answers the NamespaceLifecycle admission's 404 ``namespaces "x" not found``. (An update or
patch of an object in a missing namespace answers that object's own 404, as the real server does:
it looks the object up before admission runs.) The in-process seeding helpers (:meth:`apply`,
:meth:`add_workload`, :meth:`issue_service_account_token`,
:func:`rotator_sandbox.kubernetes_charts.seed_agent_chart`) create the namespace they need, as a
test would before it starts.

Rollouts take each workload's own ``rollout_seconds`` (:meth:`add_workload`,
:meth:`set_rollout_seconds`), defaulting to the emulator-wide value.

Decisions where the real server needs a cluster around it: namespaces cannot be deleted;
``fieldValidation=Strict`` is accepted but unknown fields are not reported; ``managedFields`` are
not kept; server-side apply (``application/apply-patch+yaml``) is answered 415; the ``/status``
subresources are read-only; Jobs and CronJobs have no controller (no pods, ``status`` stays as
written); SelfSubjectAccessReviews are answered from :meth:`forbid` rules alone (RBAC objects are
not served); protobuf request bodies are decoded for Secrets, Namespaces and the two reviews only
(typed kubectl creates of other kinds, e.g. ``kubectl create cronjob``, get a 415: use
``kubectl create -f``).
"""

from __future__ import annotations

import base64
import bisect
import copy
import hmac
import json
import os
import secrets as _secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rotator_sandbox._server import Emulator, Request, Response
from rotator_sandbox.kubernetes_config import generate_tls, write_kubeconfig
from rotator_sandbox.kubernetes_controller import (
    REVISION_ANNOTATION,
    Rollout,
    format_time,
    rollout_complete,
    template_hash,
    workload_status,
)
from rotator_sandbox.kubernetes_errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    expired,
    forbidden,
    generic,
    invalid,
    method_not_allowed,
    not_found,
    page_not_found,
    unauthorized,
    unsupported_media_type,
)
from rotator_sandbox.kubernetes_objects import (
    DecodeError,
    apply_defaults,
    decode_object,
    generate_job_selector,
    generation_changed,
    go_map,
    invalid_patch,
    normalize,
    same_content,
    validate,
)
from rotator_sandbox.kubernetes_patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from rotator_sandbox.kubernetes_resources import (
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    NAMESPACES,
    RESOURCES,
    SELF_SUBJECT_ACCESS_REVIEWS,
    SERVER_VERSION,
    ResourceType,
    api_group,
    api_group_list,
    api_resource_list,
    api_versions,
    openapi_v3_document,
    openapi_v3_root,
    resolve,
    resource_for,
    table,
)
from rotator_sandbox.kubernetes_selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from rotator_sandbox.kubernetes_tokens import (
    DEFAULT_EXPIRATION_SECONDS,
    DEFAULT_ISSUER,
    InvalidToken,
    ServiceAccountTokens,
)

__all__ = ["KubernetesEmulator", "generate_tls", "write_kubeconfig"]

#: Namespaces every cluster has.
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
#: How often an open watch re-checks for changes (lazy workload status needs polling).
WATCH_POLL_SECONDS = 0.05
#: Longest a watch stays open when the client does not ask for less.
MAX_WATCH_SECONDS = 1800.0
#: Watch events kept for clients that resume from a resourceVersion.
EVENT_HISTORY = 10_000
#: The user RBAC messages name when a token is configured and no ``username`` is given.
DEFAULT_TOKEN_USER = "system:serviceaccount:rotator:rotator"

_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_JSON_MEDIA = ("application/json", "application/*", "*/*")


@dataclass(frozen=True)
class _Event:
    rv: int
    plural: str
    type: str
    obj: dict[str, Any]


@dataclass(frozen=True)
class _Forbid:
    verb: str
    group: str | None  # None with plural "*": any group
    plural: str
    subresource: str
    namespace: str | None
    name: str | None

    def matches(  # noqa: PLR0917 - the attributes of one authorization request
        self, verb: str, group: str, plural: str, sub: str, namespace: str, name: str
    ) -> bool:
        """Whether the rule denies the request; ``*`` in a review's question matches any rule."""
        return (
            (self.verb == "*" or verb in ("*", self.verb))
            and (self.group is None or group in ("*", self.group))
            and (self.plural == "*" or plural in ("*", self.plural))
            and self.subresource == sub
            and self.namespace in (None, namespace)
            and self.name in (None, name)
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace", "")), str(meta["name"])


def _without_type(obj: dict[str, Any]) -> dict[str, Any]:
    """List items as the server writes them: without ``kind``/``apiVersion``."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _respond(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer encoded as the API server encodes it: compact, newline-terminated."""
    raw = json.dumps(body, separators=(",", ":")).encode() + b"\n"
    return Response(status, body, headers=headers or {}, raw=raw)


def _event_line(event_type: str, obj: dict[str, Any]) -> bytes:
    """One watch event, a JSON document per line."""
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _merge_patch_object(current: dict[str, Any], patch: Any) -> Any:
    """A JSON merge patch of an object: the patch itself must be an object."""
    if not isinstance(patch, dict):
        raise PatchError(400, "Invalid JSON Patch")
    return merge_patch(current, patch)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


class KubernetesEmulator(Emulator):
    """The emulated API server; see the module docstring for what it serves."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
        token: str | None = None,
        clock: Callable[[], datetime] | None = None,
        rollout_seconds: float = 0.0,
        ca_cert: str | os.PathLike[str] | None = None,
        username: str | None = None,
        nodes: int = 2,
        issuer: str = DEFAULT_ISSUER,
    ) -> None:
        """Create a stopped emulator.

        ``tls`` is (certfile, keyfile) of the server; ``ca_cert`` the CA that signed it (written
        into kubeconfigs; defaults to the server certificate itself). ``token`` switches on
        bearer authentication. ``clock`` returns aware UTC datetimes (default: wall clock);
        ``rollout_seconds`` is how long the simulated controller takes per rollout unless a
        workload has its own (:meth:`set_rollout_seconds`); ``nodes`` is how many nodes
        DaemonSets run on unless ``add_workload`` says otherwise; ``username`` is the user
        ``token`` (or anonymity) authenticates as, named in Forbidden messages; ``issuer`` is
        the ``iss`` of service-account tokens and the API server's own audience.
        """
        super().__init__(host=host, port=port, tls=tls)
        self.token = token
        self.rollout_seconds = rollout_seconds
        #: Audiences TokenReview checks when the review names none (``--api-audiences``).
        self.api_audiences: tuple[str, ...] = (issuer,)
        self.nodes = nodes
        self.username = username or (DEFAULT_TOKEN_USER if token else "system:anonymous")
        self._clock = clock or _utc_now
        self._ca_cert = Path(ca_cert) if ca_cert is not None else None
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            rtype.plural: {} for rtype in RESOURCES.values()
        }
        self._rollouts: dict[tuple[str, str, str], Rollout] = {}
        # Per-workload rollout durations; workloads without one use self.rollout_seconds.
        self._rollout_overrides: dict[tuple[str, str, str], float] = {}
        self._tokens = ServiceAccountTokens(issuer)
        # Workloads whose status may still change as time passes; the others are skipped by the
        # controller so that reads stay cheap with thousands of settled workloads.
        self._unsettled: set[tuple[str, str, str]] = set()
        self._events: list[_Event] = []
        self._rv = 0
        self._forbidden: list[_Forbid] = []
        self._conflicts: dict[tuple[str, str, str], int] = {}
        self._changed = threading.Condition(self.lock)
        self._stopping = threading.Event()
        with self.lock:
            for namespace in DEFAULT_NAMESPACES:
                self._ensure_namespace(namespace)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KubernetesEmulator:
        """Bind and serve; returns self."""
        self._stopping.clear()
        super().start()
        return self

    def __enter__(self) -> KubernetesEmulator:
        return self.start()

    def stop(self) -> None:
        """Stop serving; open watches end."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        super().stop()

    def now(self) -> datetime:
        """The emulator's current time (the injected clock)."""
        return self._clock()

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion handed out."""
        with self.lock:
            return str(self._rv)

    def ca_certificate_pem(self) -> bytes | None:
        """PEM of the CA clients should trust (None over plain HTTP)."""
        if self._tls is None:
            return None
        source = self._ca_cert or Path(self._tls[0])
        return source.read_bytes()

    # -- in-process helpers (thread-safe) ----------------------------------------------------

    def apply(self, obj: Mapping[str, Any], *, rolled_out: bool = True) -> dict[str, Any]:
        """Create or replace an object (for seeding); returns it as stored.

        ``kind``/``apiVersion`` select the type; a replace is unconditional. A workload that is
        created here starts fully rolled out unless ``rolled_out`` is False; a replace that
        changes its pod template starts a rollout as an API write would.
        """
        rtype = resolve(str(obj.get("kind", "")))
        if rtype.review:
            raise ValueError(f"{rtype.kind} is answered, never stored: POST it instead")
        raw = json.dumps(obj).encode()
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        namespace = namespace if rtype.namespaced else ""
        with self.lock:
            self._reconcile_locked()
            decoded = decode_object(rtype, raw, "application/json")
            decoded["metadata"].pop("resourceVersion", None)
            name = str(decoded["metadata"].get("name", ""))
            existing = self._objects[rtype.plural].get((namespace, name))
            if existing is None:
                self._create_locked(
                    rtype,
                    namespace,
                    decoded,
                    dry_run=False,
                    rolled_out=rolled_out,
                    create_namespace=True,
                )
            else:
                self._update_locked(rtype, existing, decoded, dry_run=False)
            self._reconcile_locked()
            return copy.deepcopy(self._objects[rtype.plural][(namespace, name)])

    def get(self, kind_plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (controller status up to date), or None."""
        rtype = resolve(kind_plural)
        with self.lock:
            self._reconcile_locked()
            key = (namespace if rtype.namespaced else "", name)
            found = self._objects[rtype.plural].get(key)
            return copy.deepcopy(found) if found is not None else None

    def objects(self, kind_plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Stored objects of a type, optionally in one namespace, sorted by namespace/name."""
        rtype = resolve(kind_plural)
        with self.lock:
            self._reconcile_locked()
            return [
                copy.deepcopy(obj)
                for key, obj in sorted(self._objects[rtype.plural].items())
                if namespace is None or key[0] == namespace
            ]

    def delete(self, kind_plural: str, namespace: str, name: str) -> bool:
        """Delete an object in-process; returns whether it existed."""
        rtype = resolve(kind_plural)
        with self.lock:
            existing = self._objects[rtype.plural].get(
                (namespace if rtype.namespaced else "", name)
            )
            if existing is None:
                return False
            self._delete_locked(rtype, existing)
            return True

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, base64-decoded to text; ``KeyError`` when there is no such Secret."""
        secret = self.get("secrets", namespace, name)
        if secret is None:
            raise KeyError(f"secret {namespace}/{name} not found")
        return {
            key: base64.b64decode(value).decode("utf-8", errors="replace")
            for key, value in (secret.get("data") or {}).items()
        }

    def add_workload(  # noqa: PLR0917 - the positional order is the agreed helper signature
        self,
        kind: str,
        namespace: str,
        name: str,
        replicas: int = 2,
        labels: Mapping[str, str] | None = None,
        template_annotations: Mapping[str, str] | None = None,
        env_from_secret: str | None = None,
        *,
        image: str = "registry.example.com/stackstate/agent:1.0.0",
        env_secret_key_ref: tuple[str, str] | None = None,
        volume_secret: str | None = None,
        rollout_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Seed a rolled-out Deployment, DaemonSet or StatefulSet; returns it as stored.

        ``replicas`` is the node count for a DaemonSet. ``labels`` label the object, select its
        pods and label the template (default ``app: <name>``). The one container reads a Secret
        the ways pods do: ``env_from_secret`` adds ``envFrom[].secretRef`` to that Secret;
        ``env_secret_key_ref=(secret, key)`` an env var (named after the key, upper-cased) from
        ``valueFrom.secretKeyRef``; ``volume_secret`` mounts that Secret as a volume at
        ``/etc/secrets/<name>``. ``rollout_seconds`` is this workload's rollout duration (None:
        the emulator-wide one). The namespace is created if missing.
        """
        rtype = resolve(kind)
        if not rtype.workload:
            raise ValueError(f"{kind} is not a workload kind")
        pod_labels = dict(labels or {"app": name})
        container: dict[str, Any] = {"name": name, "image": image}
        pod_spec: dict[str, Any] = {"containers": [container]}
        if env_from_secret:
            container["envFrom"] = [{"secretRef": {"name": env_from_secret}}]
        if env_secret_key_ref:
            ref_secret, ref_key = env_secret_key_ref
            variable = ref_key.upper().replace("-", "_").replace(".", "_")
            container["env"] = [
                {
                    "name": variable,
                    "valueFrom": {"secretKeyRef": {"name": ref_secret, "key": ref_key}},
                }
            ]
        if volume_secret:
            volume = f"secret-{volume_secret}"[:63].rstrip("-.")
            pod_spec["volumes"] = [{"name": volume, "secret": {"secretName": volume_secret}}]
            container["volumeMounts"] = [
                {"name": volume, "mountPath": f"/etc/secrets/{volume_secret}", "readOnly": True}
            ]
        template_meta: dict[str, Any] = {"labels": pod_labels}
        if template_annotations:
            template_meta["annotations"] = dict(template_annotations)
        spec: dict[str, Any] = {
            "selector": {"matchLabels": pod_labels},
            "template": {"metadata": template_meta, "spec": pod_spec},
        }
        if rtype is not DAEMONSETS:
            spec["replicas"] = replicas
        if rtype.plural == "statefulsets":
            spec["serviceName"] = name
        obj = {
            "apiVersion": rtype.api_version,
            "kind": rtype.kind,
            "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
            "spec": spec,
        }
        with self.lock:
            self.apply(obj)
            key = (rtype.plural, namespace, name)
            if rollout_seconds is not None:
                self._set_duration_locked(key, rollout_seconds)
            if rtype is DAEMONSETS:
                self._rollouts[key].nodes = replicas
                self._unsettled.add(key)
            self._reconcile_locked()
            return copy.deepcopy(self._objects[rtype.plural][(namespace, name)])

    def set_rollout_seconds(
        self, kind: str, namespace: str, name: str, seconds: float | None
    ) -> None:
        """How long this workload's rollouts take (None: back to the emulator-wide value).

        A rollout in progress keeps the fraction it has done and finishes at the new pace; a
        finished one stays finished, so the new duration applies to the next rollout.
        """
        rtype = resolve(kind)
        if not rtype.workload:
            raise ValueError(f"{kind} is not a workload kind")
        key = (rtype.plural, namespace, name)
        with self.lock:
            self._reconcile_locked()
            if key not in self._rollouts:
                raise KeyError(f"{rtype.plural} {namespace}/{name} not found")
            self._set_duration_locked(key, seconds)
            self._reconcile_locked()

    def rollout_seconds_of(self, kind: str, namespace: str, name: str) -> float:
        """The rollout duration that applies to a workload."""
        rtype = resolve(kind)
        with self.lock:
            return self._duration((rtype.plural, namespace, name))

    def create_namespace(
        self, name: str, *, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Create namespace ``name`` unless it exists (test seeding, as a test would run ``kubectl
        create namespace`` first); ``labels`` are added to it. Returns it as stored."""
        with self.lock:
            existing = self._objects["namespaces"].get(("", name))
            if existing is None:
                metadata: dict[str, Any] = {"name": name}
                if labels:
                    metadata["labels"] = dict(labels)
                return self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
            if labels and any(
                existing["metadata"].get("labels", {}).get(k) != v for k, v in labels.items()
            ):
                updated = copy.deepcopy(existing)
                updated["metadata"].setdefault("labels", {}).update(labels)
                self._update_locked(NAMESPACES, existing, updated, dry_run=False)
            return copy.deepcopy(self._objects["namespaces"][("", name)])

    def issue_service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Sequence[str] | None = None,
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
    ) -> str:
        """A token for service account ``namespace/name``, as ``TokenRequest`` would issue it.

        It is JWT-shaped (see :mod:`rotator_sandbox.kubernetes_tokens`), valid for
        ``expiration_seconds`` from the emulator's now, for ``audiences`` (default: the API
        server's own, :attr:`api_audiences`). TokenReview accepts it, and it authenticates
        requests as ``system:serviceaccount:<namespace>:<name>``. The namespace is created if
        missing (service accounts are not served; one comes into being with its first token).
        """
        with self.lock:
            self._ensure_namespace(namespace)
            return self._tokens.issue(
                namespace,
                name,
                now=self._clock(),
                audiences=list(audiences) if audiences is not None else list(self.api_audiences),
                expiration_seconds=expiration_seconds,
            )

    def service_account_uid(self, namespace: str, name: str) -> str:
        """The uid TokenReview reports for a service account (and its tokens carry)."""
        with self.lock:
            return self._tokens.account_uid(namespace, name)

    def delete_service_account(self, namespace: str, name: str) -> None:
        """As if the service account were deleted: its tokens stop authenticating (TokenReview
        says so) and a token issued later belongs to a new account with a new uid."""
        with self.lock:
            self._tokens.revoke(namespace, name)

    def stall(self, kind: str, namespace: str, name: str, *, stalled: bool = True) -> None:
        """Make a workload's rollout never complete (``stalled=False`` releases it).

        A Deployment then reports ``Progressing=False`` with reason
        ``ProgressDeadlineExceeded`` while a rollout is pending; DaemonSets and StatefulSets
        simply stop short. Stalling a workload that is fully rolled out stalls its next rollout.
        """
        rtype = resolve(kind)
        with self.lock:
            self._reconcile_locked()
            state = self._rollouts.get((rtype.plural, namespace, name))
            if state is None:
                raise KeyError(f"{rtype.plural} {namespace}/{name} not found")
            state.set_stalled(
                stalled, self._clock(), self._duration((rtype.plural, namespace, name))
            )
            self._unsettled.add((rtype.plural, namespace, name))
            self._reconcile_locked()

    def pause(self, namespace: str, name: str, *, paused: bool = True) -> dict[str, Any]:
        """Set a Deployment's ``spec.paused`` (a normal write: generation increments)."""
        with self.lock:
            self._reconcile_locked()
            existing = self._objects["deployments"].get((namespace, name))
            if existing is None:
                raise KeyError(f"deployments {namespace}/{name} not found")
            updated = copy.deepcopy(existing)
            if paused:
                updated["spec"]["paused"] = True
            else:
                updated["spec"].pop("paused", None)
            self._update_locked(DEPLOYMENTS, existing, updated, dry_run=False)
            self._reconcile_locked()
            return copy.deepcopy(self._objects["deployments"][(namespace, name)])

    def rollout_complete(self, kind: str, namespace: str, name: str) -> bool:
        """Whether ``kubectl rollout status`` would call the workload successfully rolled out."""
        rtype = resolve(kind)
        obj = self.get(rtype.plural, namespace, name)
        if obj is None:
            raise KeyError(f"{rtype.plural} {namespace}/{name} not found")
        return rollout_complete(rtype.plural, obj)

    def forbid(
        self,
        verb: str,
        resource: str,
        namespace: str | None = None,
        *,
        name: str | None = None,
    ) -> None:
        """Answer 403 Forbidden (the RBAC message) to ``verb`` on ``resource``.

        ``verb`` is an RBAC verb (get, list, watch, create, update, patch, delete) or ``*``;
        ``resource`` a plural, kind or ``plural/subresource`` (``deployments/status``,
        ``cronjobs``, ``tokenreviews``); ``namespace``/``name`` None match any.
        SelfSubjectAccessReviews answer ``allowed: false`` for what a rule forbids.
        """
        plural, _, sub = resource.partition("/")
        if plural == "*":
            group: str | None = None
            resolved = "*"
        else:
            rtype = resolve(plural)
            group, resolved = rtype.group, rtype.plural
        with self.lock:
            self._forbidden.append(_Forbid(verb.lower(), group, resolved, sub, namespace, name))

    def allow_all(self) -> None:
        """Drop every rule armed with :meth:`forbid`."""
        with self.lock:
            self._forbidden.clear()

    def conflict_next_update(
        self, resource: str, namespace: str, name: str, count: int = 1
    ) -> None:
        """Simulate a concurrent writer: just before each of the next ``count`` updates (PUT or
        PATCH) of that object, its ``resourceVersion`` moves on, so a request carrying the
        version it read gets a genuine 409 Conflict.
        """
        rtype = resolve(resource)
        with self.lock:
            self._conflicts[(rtype.plural, namespace if rtype.namespaced else "", name)] = count

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        *,
        context: str = "sandbox",
        namespace: str = "default",
        extra_contexts: Mapping[str, KubernetesEmulator] | None = None,
    ) -> Path:
        """Write a kubeconfig whose current context ``context`` points here (mode 0600).

        ``extra_contexts`` adds contexts pointing at other emulators (other "clusters").
        """
        contexts: dict[str, KubernetesEmulator] = {context: self}
        contexts.update(extra_contexts or {})
        return write_kubeconfig(path, contexts, current=context, namespace=namespace)

    # -- HTTP ----------------------------------------------------------------------------------

    def error_response(self, status: int, message: str) -> Response:
        """A ``Status`` body for injected faults."""
        return self._failure(generic(status, message))

    def handle(self, request: Request) -> Response:
        """Authenticate, route and answer one request."""
        try:
            user = self._authenticate(request)
            return self._route(request, user)
        except ApiError as err:
            return self._failure(err)

    @staticmethod
    def _failure(err: ApiError) -> Response:
        return _respond(err.code, err.status(), headers=dict(err.headers))

    def _authenticate(self, request: Request) -> str:
        """The user a request authenticates as (401 when a token is required and not given)."""
        header = request.header("Authorization") or ""
        scheme, _, credential = header.partition(" ")
        bearer = credential.strip() if scheme.lower() == "bearer" else ""
        if bearer and self.token is not None and hmac.compare_digest(bearer, self.token):
            return self.username
        if bearer:
            with self.lock:
                try:
                    return self._tokens.authenticate(bearer, self._clock()).username
                except InvalidToken:
                    pass
        if self.token is not None:
            raise unauthorized()
        return self.username

    def _route(self, request: Request, user: str) -> Response:
        path = request.path.rstrip("/") or "/"
        if request.method == "GET":
            static = self._static_document(path)
            if static is not None:
                return static
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise page_not_found()
        if not rest:
            document = api_resource_list(group, version)
            if document is None or request.method != "GET":
                raise page_not_found()
            return _respond(200, document)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and resource_for(group, version, rest[2]):
            namespace, rest = rest[1], rest[2:]
        rtype = resource_for(group, version, rest[0])
        if rtype is None or len(rest) > 3 or (namespace and not rtype.namespaced):
            raise page_not_found()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and not (sub == "status" and rtype.status_subresource):
            raise page_not_found()
        return self._serve_resource(request, rtype, namespace, name, sub, user)

    def _static_document(self, path: str) -> Response | None:
        documents: dict[str, Callable[[], Any]] = {
            "/version": lambda: SERVER_VERSION,
            "/api": lambda: api_versions(f"{self._host}:{self.port}"),
            "/apis": api_group_list,
            "/openapi/v3": openapi_v3_root,
        }
        if path in documents:
            return _respond(200, documents[path]())
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, raw=b"ok", content_type="text/plain; charset=utf-8")
        if path.startswith("/openapi/v3/"):
            document = openapi_v3_document(path.removeprefix("/openapi/v3/"))
            if document is None:
                raise page_not_found()
            return _respond(200, document)
        if path.startswith("/apis/") and path.count("/") == 2:
            group_doc = api_group(path.split("/")[2])
            if group_doc is None:
                raise page_not_found()
            return _respond(200, group_doc)
        return None

    @staticmethod
    def _check_accept(request: Request) -> None:
        """406 unless the client takes JSON (the only encoding the emulator writes)."""
        accept = request.header("Accept")
        if accept:
            media = [part.split(";")[0].strip().lower() for part in accept.split(",")]
            if not any(m in _JSON_MEDIA for m in media):
                raise ApiError(
                    406,
                    "NotAcceptable",
                    "only the following media types are accepted: application/json, "
                    "application/yaml, application/vnd.kubernetes.protobuf, application/cbor",
                )

    @staticmethod
    def _wants_table(request: Request) -> str | None:
        """The ``includeObject`` policy when the client asked for a Table, else None."""
        accept = request.header("Accept") or ""
        for part in accept.split(","):
            params = {p.strip() for p in part.split(";")[1:]}
            if "as=Table" in params and ("g=meta.k8s.io" in params or not params - {"as=Table"}):
                return request.query_one("includeObject") or "PartialObjectMetadata"
        return None

    def _verb(self, request: Request, name: str) -> str:
        method = request.method
        if method == "GET":
            if name:
                return "get"
            return "watch" if _truthy(request.query_one("watch")) else "list"
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        verb = verbs.get(method)
        if verb is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
        if verb == "create" and name:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if verb != "create" and not name:
            return "deletecollection" if verb == "delete" else verb
        return verb

    def _serve_resource(  # noqa: PLR0917 - one request's routing facts
        self, request: Request, rtype: ResourceType, namespace: str, name: str, sub: str, user: str
    ) -> Response:
        verb = self._verb(request, name)
        self._check_accept(request)
        if rtype.namespaced and not namespace and verb not in ("list", "watch"):
            raise page_not_found()
        if (
            verb not in rtype.verbs
            or (sub and verb != "get")
            or (not name and verb not in ("list", "watch", "create"))
        ):
            raise method_not_allowed(rtype.group, rtype.plural, verb)
        with self.lock:
            if self._forbids(verb, rtype.group, rtype.plural, sub, namespace, name):
                raise forbidden(
                    rtype.group,
                    rtype.plural,
                    name,
                    user=user,
                    verb=verb,
                    namespace=namespace,
                    subresource=sub,
                )
        if rtype.review:
            return self._review(request, rtype, user)
        if verb == "watch":
            return self._watch(request, rtype, namespace)
        dry_run = "All" in request.query.get("dryRun", [])
        with self.lock:
            self._reconcile_locked()
            if verb == "get":
                return self._get_response(request, rtype, namespace, name)
            if verb == "list":
                return self._list_response(request, rtype, namespace)
            if verb == "create":
                obj = decode_object(rtype, request.body, request.header("Content-Type"))
                created = self._create_locked(rtype, namespace, obj, dry_run=dry_run)
                return _respond(201, created)
            existing = self._objects[rtype.plural].get((namespace, name))
            if existing is None:
                if verb == "update" and rtype.create_on_update:
                    obj = decode_object(rtype, request.body, request.header("Content-Type"))
                    self._check_name(obj, namespace, name)
                    if obj["metadata"].get("resourceVersion"):
                        raise not_found(rtype.group, rtype.plural, name)
                    created = self._create_locked(rtype, namespace, obj, dry_run=dry_run)
                    return _respond(201, created)
                raise not_found(rtype.group, rtype.plural, name)
            existing = self._simulate_concurrent_writer(rtype, existing, verb)
            if verb == "update":
                obj = decode_object(rtype, request.body, request.header("Content-Type"))
                self._check_name(obj, namespace, name)
                return _respond(200, self._update_locked(rtype, existing, obj, dry_run=dry_run))
            if verb == "patch":
                obj = self._patched(request, rtype, existing)
                self._check_name(obj, namespace, name)
                return _respond(200, self._update_locked(rtype, existing, obj, dry_run=dry_run))
            return _respond(200, self._delete_response(request, rtype, existing, dry_run))

    # -- reviews -------------------------------------------------------------------------------

    def _forbids(  # noqa: PLR0917 - the attributes of one authorization request
        self, verb: str, group: str, plural: str, sub: str, namespace: str, name: str
    ) -> bool:
        """Whether a :meth:`forbid` rule denies the request (caller holds the lock)."""
        return any(
            rule.matches(verb, group, plural, sub, namespace, name) for rule in self._forbidden
        )

    def _review(self, request: Request, rtype: ResourceType, user: str) -> Response:
        """Answer a SelfSubjectAccessReview or TokenReview: the posted object plus ``status``."""
        review = decode_object(rtype, request.body, request.header("Content-Type"))
        review["metadata"].setdefault("creationTimestamp", None)
        spec = review.get("spec")
        if not isinstance(spec, dict):
            spec = review["spec"] = {}
        with self.lock:
            if rtype is SELF_SUBJECT_ACCESS_REVIEWS:
                status = self._access_review_status(spec)
            else:
                status = self._token_review_status(spec)
        answer = {
            "kind": rtype.kind,
            "apiVersion": rtype.api_version,
            "metadata": review["metadata"],
            "spec": spec,
            "status": status,
        }
        return _respond(201, answer)

    def _access_review_status(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Allowed unless a :meth:`forbid` rule matches — the rules real requests get 403 from."""
        attributes = spec.get("resourceAttributes")
        other = spec.get("nonResourceAttributes")
        if (attributes is None) == (other is None):
            error = (
                FieldError.invalid(
                    "spec.resourceAttributes",
                    "null",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
                if attributes is None
                else FieldError.invalid(
                    "spec.nonResourceAttributes",
                    other,
                    "cannot be specified in combination with resourceAttributes",
                )
            )
            raise invalid(SELF_SUBJECT_ACCESS_REVIEWS.group, "SelfSubjectAccessReview", "", [error])
        if attributes is None:
            return {"allowed": True}
        if not isinstance(attributes, dict):
            raise bad_request("spec.resourceAttributes must be an object")

        def text(field: str) -> str:
            return str(attributes.get(field) or "")

        denied = self._forbids(
            text("verb").lower(),
            text("group"),
            text("resource"),
            text("subresource"),
            text("namespace"),
            text("name"),
        )
        return {"allowed": not denied}

    def _token_review_status(self, spec: dict[str, Any]) -> dict[str, Any]:
        """TokenReview's verdict on an issued service-account token (see kubernetes_tokens)."""
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise bad_request("token is required for TokenReview in authentication")
        asked = spec.get("audiences") or list(self.api_audiences)
        try:
            identity = self._tokens.authenticate(token, self._clock())
        except InvalidToken as exc:
            return {"authenticated": False, "user": {}, "error": str(exc)}
        matched = [audience for audience in asked if audience in identity.audiences]
        if not matched:
            return {
                "authenticated": False,
                "user": {},
                "error": (
                    "[invalid bearer token, token audiences "
                    f"{json.dumps(list(identity.audiences))} is invalid for the target audiences "
                    f"{json.dumps(list(asked))}]"
                ),
            }
        return {"authenticated": True, "user": identity.user_info(), "audiences": matched}

    # -- verbs ---------------------------------------------------------------------------------

    def _get_response(
        self, request: Request, rtype: ResourceType, namespace: str, name: str
    ) -> Response:
        found = self._objects[rtype.plural].get((namespace, name))
        if found is None:
            raise not_found(rtype.group, rtype.plural, name)
        include = self._wants_table(request)
        if include is not None:
            return _respond(
                200,
                table(
                    rtype,
                    [found],
                    self._clock(),
                    resource_version=str(self._rv),
                    include_object=include,
                ),
            )
        return _respond(200, copy.deepcopy(found))

    def _select(
        self, request: Request, rtype: ResourceType, namespace: str
    ) -> list[dict[str, Any]]:
        labels = parse_label_selector(request.query_one("labelSelector") or "")
        fields = parse_field_selector(request.query_one("fieldSelector") or "", rtype.plural)
        return [
            obj
            for key, obj in sorted(self._objects[rtype.plural].items())
            if (not namespace or key[0] == namespace)
            and labels_match(labels, obj["metadata"].get("labels"))
            and fields_match(fields, obj)
        ]

    def _list_response(self, request: Request, rtype: ResourceType, namespace: str) -> Response:
        items = self._select(request, rtype, namespace)
        list_meta: dict[str, Any] = {}
        token = request.query_one("continue")
        if token:
            try:
                start = tuple(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(f"continue key is not valid: {exc}") from exc
            items = [o for o in items if _object_key(o) > start]
        limit_text = request.query_one("limit")
        limit = int(limit_text) if limit_text and limit_text.isdigit() else 0
        if limit and len(items) > limit:
            last = list(_object_key(items[limit - 1]))
            list_meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": self._rv, "start": last}).encode()
            ).decode()
            list_meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        include = self._wants_table(request)
        if include is not None:
            return _respond(
                200,
                table(
                    rtype,
                    items,
                    self._clock(),
                    resource_version=str(self._rv),
                    include_object=include,
                    list_meta=list_meta,
                ),
            )
        return _respond(
            200,
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self._rv), **list_meta},
                "items": [_without_type(copy.deepcopy(o)) for o in items],
            },
        )

    def _check_name(self, obj: dict[str, Any], namespace: str, name: str) -> None:
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        if namespace and meta.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )

    def _create_locked(
        self,
        rtype: ResourceType,
        namespace: str,
        obj: dict[str, Any],
        *,
        dry_run: bool,
        rolled_out: bool = False,
        create_namespace: bool = False,
    ) -> dict[str, Any]:
        """Create (or, with ``dry_run``, pretend to); ``create_namespace`` is for seeding only:
        over HTTP a missing namespace is the NamespaceLifecycle admission's 404."""
        meta = obj["metadata"]
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
            if not create_namespace and ("", namespace) not in self._objects["namespaces"]:
                raise not_found("", "namespaces", namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(_secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        sent_version = str(meta.pop("resourceVersion", "") or "")
        if sent_version.isdigit() and int(sent_version) != 0:
            # The storage layer refuses it with a plain error, which the server answers as a
            # 500 without a reason (an unparsable version is silently dropped instead).
            raise ApiError(500, "", "resourceVersion should not be set on objects to be created")
        for system_field in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
            meta.pop(system_field, None)
        now = self._clock()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = format_time(now)
        apply_defaults(rtype, obj)
        if rtype is JOBS:
            generate_job_selector(obj)
        validate(rtype, obj, None)
        key = (meta.get("namespace", ""), meta["name"])
        if key in self._objects[rtype.plural]:
            raise already_exists(rtype.group, rtype.plural, meta["name"])
        if rtype.has_generation:
            meta["generation"] = 1
        if rtype.status_subresource and rtype is not NAMESPACES:
            obj["status"] = {}  # written by controllers only (the /status subresource)
        if rtype is DAEMONSETS:
            meta.setdefault("annotations", {})["deprecated.daemonset.template.generation"] = "1"
        if dry_run:
            return obj
        if rtype.namespaced:
            self._ensure_namespace(namespace)
        stored = self._commit(rtype, obj, "ADDED")
        if rtype.workload:
            workload = (rtype.plural, *key)
            duration = self._duration(workload)
            started = now - timedelta(seconds=duration) if rolled_out else now
            self._rollouts[workload] = Rollout(
                template_hash=template_hash(obj["spec"].get("template")),
                previous_hash=None,
                started=started,
                nodes=self.nodes,
            )
            if rtype is DEPLOYMENTS and obj["spec"].get("paused"):
                self._rollouts[workload].set_paused(True, now, duration)
            self._unsettled.add(workload)
        return stored

    def _update_locked(
        self,
        rtype: ResourceType,
        old: dict[str, Any],
        obj: dict[str, Any],
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        old_meta = old["metadata"]
        sent_version = meta.get("resourceVersion")
        if sent_version and sent_version != old_meta["resourceVersion"]:
            raise conflict(rtype.group, rtype.plural, old_meta["name"])
        meta["name"] = old_meta["name"]
        if rtype.namespaced:
            meta["namespace"] = old_meta["namespace"]
        for system_field in ("uid", "creationTimestamp", "generation"):
            if system_field in old_meta:
                meta[system_field] = old_meta[system_field]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if rtype.status_subresource:
            obj["status"] = copy.deepcopy(old.get("status", {}))
        apply_defaults(rtype, obj)
        if rtype is DAEMONSETS:
            annotations = meta.setdefault("annotations", {})
            previous = int(
                old_meta.get("annotations", {}).get("deprecated.daemonset.template.generation", "1")
            )
            changed = obj.get("spec", {}).get("template") != old.get("spec", {}).get("template")
            annotations["deprecated.daemonset.template.generation"] = str(previous + int(changed))
        validate(rtype, obj, old)
        if generation_changed(rtype, obj, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if same_content(obj, old):
            return copy.deepcopy(old)
        if dry_run:
            return obj
        stored = self._commit(rtype, obj, "MODIFIED")
        if rtype.workload:
            self._observe_spec(rtype, stored)
            self._unsettled.add((rtype.plural, *_object_key(stored)))
        return stored

    def _delete_response(
        self, request: Request, rtype: ResourceType, existing: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        meta = existing["metadata"]
        if request.body:
            try:
                options = json.loads(request.body)
            except ValueError as exc:
                raise bad_request(f"error decoding DeleteOptions: {exc}") from exc
            preconditions = (options or {}).get("preconditions") or {}
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = preconditions.get(field)
                if wanted and wanted != meta.get(field):
                    raise conflict(
                        rtype.group,
                        rtype.plural,
                        meta["name"],
                        f"Precondition failed: {label} in precondition: {wanted}, "
                        f"{label} in object meta: {meta.get(field)}",
                    )
        if not dry_run:
            self._delete_locked(rtype, existing)
        details: dict[str, Any] = {"name": meta["name"]}
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.plural
        details["uid"] = meta["uid"]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def _delete_locked(self, rtype: ResourceType, existing: dict[str, Any]) -> None:
        gone = copy.deepcopy(existing)
        self._commit(rtype, gone, "DELETED")
        key = _object_key(existing)
        self._rollouts.pop((rtype.plural, *key), None)
        self._rollout_overrides.pop((rtype.plural, *key), None)
        self._unsettled.discard((rtype.plural, *key))

    def _patched(
        self, request: Request, rtype: ResourceType, existing: dict[str, Any]
    ) -> dict[str, Any]:
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in _PATCH_TYPES:
            raise unsupported_media_type(list(_PATCH_TYPES))
        try:
            patch = json.loads(request.body.decode("utf-8", errors="replace") or "null")
        except ValueError as exc:
            if content_type == "application/merge-patch+json":
                raise bad_request("Invalid JSON Patch") from exc
            raise bad_request(str(exc)) from exc
        current = copy.deepcopy(existing)
        try:
            if content_type == "application/json-patch+json":
                patched = json_patch(current, patch)
            elif content_type == "application/merge-patch+json":
                patched = _merge_patch_object(current, patch)
            else:
                patched = strategic_merge_patch(current, patch)
        except PatchError as exc:
            if exc.code == 422:
                raise ApiError(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                    {},
                ) from exc
            raise bad_request(exc.message) from exc
        if not isinstance(patched, dict):
            raise invalid_patch(json.dumps(patched), DecodeError("cannot decode a non-object"))
        try:
            return normalize(rtype, patched)
        except DecodeError as exc:
            shown = (
                go_map(patch)
                if content_type.startswith("application/strategic")
                else json.dumps(patched)
            )
            raise invalid_patch(shown, exc) from exc

    # -- watch -----------------------------------------------------------------------------------

    def _watch(self, request: Request, rtype: ResourceType, namespace: str) -> Response:
        labels = parse_label_selector(request.query_one("labelSelector") or "")
        fields = parse_field_selector(request.query_one("fieldSelector") or "", rtype.plural)
        requested = request.query_one("resourceVersion") or ""
        send_initial = _truthy(request.query_one("sendInitialEvents"))
        bookmarks = _truthy(request.query_one("allowWatchBookmarks"))
        timeout_text = request.query_one("timeoutSeconds")
        try:
            timeout = (
                min(float(timeout_text), MAX_WATCH_SECONDS) if timeout_text else MAX_WATCH_SECONDS
            )
        except ValueError as exc:
            raise bad_request(f"invalid timeoutSeconds: {timeout_text}") from exc

        def matches(obj: dict[str, Any]) -> bool:
            key_ns = obj["metadata"].get("namespace", "")
            return (
                (not namespace or key_ns == namespace)
                and labels_match(labels, obj["metadata"].get("labels"))
                and fields_match(fields, obj)
            )

        initial: list[tuple[str, dict[str, Any]]] = []
        with self.lock:
            self._reconcile_locked()
            if send_initial or requested in ("", "0"):
                initial = [
                    ("ADDED", copy.deepcopy(obj))
                    for _key, obj in sorted(self._objects[rtype.plural].items())
                    if matches(obj)
                ]
                cursor = self._rv
            else:
                try:
                    cursor = int(requested)
                except ValueError as exc:
                    raise bad_request(f"invalid resource version: {requested}") from exc
                oldest = self._events[0].rv if self._events else self._rv + 1
                if cursor < oldest - 1 and cursor < self._rv:
                    gone = expired(f"too old resource version: {cursor} ({oldest - 1})")
                    line = _event_line("ERROR", gone.status())
                    return Response(200, stream=iter([line]))

        def stream() -> Iterator[bytes]:
            position = cursor
            for kind, obj in initial:
                yield _event_line(kind, obj)
            if send_initial and bookmarks:
                mark = {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {
                        "resourceVersion": str(position),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                yield _event_line("BOOKMARK", mark)
            deadline = time.monotonic() + timeout
            while not self._stopping.is_set() and time.monotonic() < deadline:
                with self._changed:
                    self._reconcile_locked()
                    start = bisect.bisect_right(self._events, position, key=lambda e: e.rv)
                    batch = [
                        e
                        for e in self._events[start:]
                        if e.plural == rtype.plural and matches(e.obj)
                    ]
                    if self._events:
                        position = max(position, self._events[-1].rv)
                    if not batch:
                        self._changed.wait(timeout=WATCH_POLL_SECONDS)
                        continue
                for event in batch:
                    yield _event_line(event.type, event.obj)

        return Response(200, stream=stream())

    # -- storage and controller ------------------------------------------------------------------

    def _commit(self, rtype: ResourceType, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        """Write (or delete) an object with a new resourceVersion and record the watch event."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = _object_key(obj)
        if event_type == "DELETED":
            self._objects[rtype.plural].pop(key, None)
        else:
            self._objects[rtype.plural][key] = obj
        self._events.append(_Event(self._rv, rtype.plural, event_type, copy.deepcopy(obj)))
        if len(self._events) > EVENT_HISTORY * 2:
            del self._events[:EVENT_HISTORY]
        self._changed.notify_all()
        return copy.deepcopy(obj)

    def _ensure_namespace(self, namespace: str) -> None:
        if ("", namespace) in self._objects["namespaces"]:
            return
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": format_time(self._clock()),
            },
        }
        apply_defaults(NAMESPACES, obj)
        self._commit(NAMESPACES, obj, "ADDED")

    def _simulate_concurrent_writer(
        self, rtype: ResourceType, existing: dict[str, Any], verb: str
    ) -> dict[str, Any]:
        """Apply an armed :meth:`conflict_next_update`: someone else writes first."""
        if verb not in ("update", "patch"):
            return existing
        key = (rtype.plural, *_object_key(existing))
        remaining = self._conflicts.get(key, 0)
        if remaining <= 0:
            return existing
        if remaining == 1:
            del self._conflicts[key]
        else:
            self._conflicts[key] = remaining - 1
        bumped = copy.deepcopy(existing)
        self._commit(rtype, bumped, "MODIFIED")
        return self._objects[rtype.plural][_object_key(existing)]

    def _duration(self, workload: tuple[str, str, str]) -> float:
        """The rollout duration of a workload: its own, else the emulator-wide one."""
        return self._rollout_overrides.get(workload, self.rollout_seconds)

    def _set_duration_locked(self, workload: tuple[str, str, str], seconds: float | None) -> None:
        old = self._duration(workload)
        if seconds is None:
            self._rollout_overrides.pop(workload, None)
        else:
            self._rollout_overrides[workload] = float(seconds)
        state = self._rollouts.get(workload)
        if state is not None:
            state.rebase(self._clock(), old, self._duration(workload))
            self._unsettled.add(workload)

    def _observe_spec(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        """Tell the simulated controller about a written workload spec."""
        workload = (rtype.plural, *_object_key(obj))
        state = self._rollouts.get(workload)
        if state is None:
            return
        now = self._clock()
        duration = self._duration(workload)
        new_hash = template_hash(obj["spec"].get("template"))
        paused = bool(obj["spec"].get("paused")) if rtype is DEPLOYMENTS else False
        if paused:
            state.set_paused(True, now, duration)
            state.new_template(new_hash, now)
        else:
            state.new_template(new_hash, now)
            state.set_paused(False, now, duration)

    def _reconcile_locked(self) -> None:
        """Let the simulated controllers write whatever status has changed by now."""
        now = self._clock()
        for workload in sorted(self._unsettled):
            plural, namespace, name = workload
            rtype = resolve(plural)
            obj = self._objects[plural].get((namespace, name))
            state = self._rollouts.get(workload)
            if obj is None or state is None:
                self._unsettled.discard(workload)
                continue
            duration = self._duration(workload)
            if state.settled(now, duration):
                self._unsettled.discard(workload)
            status = workload_status(rtype.plural, obj, state, now, duration)
            annotations = dict(obj["metadata"].get("annotations") or {})
            if rtype is DEPLOYMENTS:
                annotations[REVISION_ANNOTATION] = str(state.revision)
            if status == obj.get("status") and annotations == (
                obj["metadata"].get("annotations") or {}
            ):
                continue
            updated = copy.deepcopy(obj)
            updated["status"] = status
            if annotations:
                updated["metadata"]["annotations"] = annotations
            self._commit(rtype, updated, "MODIFIED")
