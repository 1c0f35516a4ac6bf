"""The ``kubernetes-secret`` target: one data key of a Kubernetes Secret, in any kubeconfig context.

Reading GETs the Secret and base64-decodes ``data[key]`` (exact bytes, which must be UTF-8; an
empty value counts as no value). A missing Secret or data key reads as nothing there.
``stringData`` is never read: the API server merges it into ``data`` and never returns it.

Writing is read-modify-replace with optimistic concurrency: the Secret is read, only our data
key and our annotations are changed (every other data key, label, annotation, the type and the
owner references stay as they are), and the whole object is PUT back carrying the
``resourceVersion`` that was read. A concurrent writer makes the PUT fail with 409 Conflict; the
Secret is then read again and the change re-applied, up to ``conflict_attempts`` times with a
short exponential backoff, before :class:`~rotator.errors.TargetConflict`. A missing Secret is
created (type ``Opaque``, label ``app.kubernetes.io/managed-by: stackstate-key-rotator``); when
someone else creates it first (409 AlreadyExists) the write carries on as an update of theirs.
The managed-by label is set only on Secrets the rotator creates, never added to an existing one
(a Helm-made Secret keeps ``managed-by: Helm``).

Annotations. Metadata is kept per data key, because one Secret may hold several managed keys:

- ``rotator.stackstate.io/keys`` — the record :meth:`read` relies on, compact JSON mapping
  data key → fingerprint → :meth:`KeyMetadata.to_dict` (empty fields left out). A write keeps
  two entries for its data key: the new value's and the replaced value's, so a value put back
  by a concurrent writer (or restored from a backup) is still recognised as ours. Entries of
  other data keys are untouched. An unparsable record only costs metadata: the value then reads
  as adopted.
- Flat, human-readable annotations for ``kubectl describe`` (``key-id``, ``key-name``,
  ``expires-at``, ``fingerprint``, ``rotated-at``, ``previous-key-id``, each under
  ``rotator.stackstate.io/``), derived from the JSON record on every write and never read back.
  When the Secret holds *one* managed data key (present in ``data`` and in the record) they are
  unsuffixed: ``rotator.stackstate.io/key-id``. When it holds several, each data key gets its own
  set, suffixed with the data key: ``rotator.stackstate.io/key-id.API_KEY``; a data key for which
  such a name would be invalid (name part over 63 characters, or not starting and ending with an
  alphanumeric character) gets no flat annotations. Flat annotations are written only for a data
  key whose current value the record describes, and stale ones (of a removed or hand-edited key)
  are removed. Fields without a value (no previous key) are omitted.

The data and every annotation change in one request, so unlike the file target there is no
window in which a crash leaves a value without its metadata.

Foreign owners. A Secret that Helm, Argo CD, Flux or a controller renders gets its own value
written back on the next ``helm upgrade`` or sync: the rotator's key is replaced by one it may
already have deleted (an outage the rotator caused). :meth:`KubernetesSecretTarget.read` therefore
reports the owner (:func:`foreign_owner`: ``app.kubernetes.io/managed-by: Helm``,
``meta.helm.sh/release-name``, ``argocd.argoproj.io/tracking-id``, Flux's
``kustomize.toolkit.fluxcd.io/*`` and ``helm.toolkit.fluxcd.io/*`` labels, any
``ownerReferences``, plus the labels listed in ``kubernetes.foreign_owner_labels``) and the plan
refuses to write such a Secret unless the target says ``allow_foreign_owner: true``.

Read modes. By default (``read: get``) every Secret is read with its own GET, so the Role can
name each Secret in ``resourceNames`` and grants nothing else. With ``read: list`` (opted into on
the ``kubernetes:`` section or per context), :meth:`read` inside an observation
(:mod:`rotator.shared_reads`) takes the Secret from one LIST per (context, namespace) selecting
the label the rotator puts on the Secrets it creates (``app.kubernetes.io/managed-by:
stackstate-key-rotator``), shared by every target of the namespace; a Secret not in that listing
(one the rotator did not create, or none) is still read with a GET. ``list`` cannot be limited to
names or labels by RBAC: it exposes every Secret of the namespace, hence opt-in. Reads outside an
observation (apply's read-back, ``doctor``) always GET.

Errors are translated in one place, :func:`rotator.clients.kubernetes.map_api_error` (here
``map_error``, with the ``Target*`` family)::

    401, 403 ............................... TargetForbidden (verb, resource, namespace)
    404 namespace on create ................ TargetInvalid ("namespace x not found")
    other 404, 400, 422, other 4xx ......... TargetInvalid
    409 (after the retries above) .......... TargetConflict
    429, 5xx ............................... TargetUnavailable (``delay`` from Retry-After)
    urllib3 errors (refused, reset, DNS,
      timeouts), TLS failures .............. TargetUnavailable
    kubeconfig credential refresh failed ... TargetForbidden

Messages carry the API server's Status ``message`` (which names objects and users, never Secret
data) passed through :func:`rotator.secrets.redact`, and never a request or response body. The
client's exceptions are dropped from the chain (``from None``), since their text holds the whole
response body.

Calls go by path through :meth:`~rotator.clients.kubernetes.KubeClients.call` (the client's
timeout on every call) and handle the Secret as the API's JSON (a dict): no typed API class or
model of the ``kubernetes`` package is imported, which saves most of a second of CPU per run.
Nothing of the Secret is dropped on the way back: a PUT returns every field that was read.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, Literal

from rotator.clients.kubernetes import (
    DEFAULT_CONFLICT_ATTEMPTS,
    DEFAULT_CONFLICT_BACKOFF,
    Conflict,
    KubeClients,
    retry_on_conflict,
    status_of,
    translated,
)
from rotator.clients.kubernetes import map_api_error as map_error  # noqa: F401 - its table
from rotator.errors import (
    TargetConflict,
    TargetInvalid,
)
from rotator.secrets import Secret, fingerprint
from rotator.shared_reads import active, shared
from rotator.targets.base import METADATA_PREFIX, KeyMetadata, TargetState

#: The JSON annotation :meth:`KubernetesSecretTarget.read` relies on (data key → fp → metadata).
KEYS_ANNOTATION: Final = f"{METADATA_PREFIX}/keys"

#: Fields of the flat, human-readable annotations, in :meth:`KeyMetadata.to_dict` spelling.
FLAT_FIELDS: Final = (
    "key-id",
    "key-name",
    "expires-at",
    "fingerprint",
    "rotated-at",
    "previous-key-id",
)

#: Label put on Secrets the rotator creates (and only on those).
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "stackstate-key-rotator"

#: Marks of owners that write their own value back (see the module docstring).
HELM_RELEASE_ANNOTATION: Final = "meta.helm.sh/release-name"
ARGOCD_TRACKING_ANNOTATION: Final = "argocd.argoproj.io/tracking-id"
FLUX_LABEL_PREFIXES: Final = ("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")

#: How Secrets are read during an observation: one GET each, or one LIST per namespace.
ReadMode = Literal["get", "list"]
#: The label selector of list read mode: the Secrets the rotator created.
MANAGED_SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
#: Secrets per page of a list-mode LIST.
SECRET_PAGE_SIZE: Final = 500

#: How long a caller should wait after losing every attempt to concurrent writers (seconds).
_CONFLICT_DELAY: Final = 5.0

_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_MAX_ANNOTATION_NAME = 63
_RESOURCE = "secrets"

#: The Secrets of a namespace, and one of them (paths of :meth:`KubeClients.call`).
_COLLECTION_PATH: Final = "/api/v1/namespaces/{namespace}/secrets"
_OBJECT_PATH: Final = "/api/v1/namespaces/{namespace}/secrets/{name}"

#: A Secret as the API server's JSON (``apiVersion``, ``metadata``, ``data``, ...).
SecretObject = dict[str, Any]


class KubernetesSecretTarget:
    """A data key of a Kubernetes Secret, reached through the context's API client."""

    def __init__(
        self,
        clients: KubeClients,
        *,
        namespace: str,
        name: str,
        key: str,
        context: str | None = None,
        conflict_attempts: int = DEFAULT_CONFLICT_ATTEMPTS,
        conflict_backoff: float = DEFAULT_CONFLICT_BACKOFF,
        allow_foreign_owner: bool = False,
        foreign_owner_labels: tuple[str, ...] = (),
        read_mode: ReadMode = "get",
    ) -> None:
        """``read_mode`` ``list``: observations read the Secret from one shared label-selected
        LIST of its namespace (see the module docstring)."""
        self.clients = clients
        self.read_mode: ReadMode = read_mode
        self.namespace = namespace
        self.name = name
        self.key = key
        self.context = context
        self.allow_foreign_owner = allow_foreign_owner
        self.foreign_owner_labels = foreign_owner_labels
        #: Updates answered 404 in the current write (see :meth:`_modify`).
        self._gone = 0
        self.conflict_attempts = max(1, conflict_attempts)
        self.conflict_backoff = conflict_backoff
        if not _DATA_KEY.match(key) or len(key) > 253:
            raise TargetInvalid(
                f"{self.id}: data key must be at most 253 characters of letters, digits, "
                "'-', '_' and '.'"
            )

    # -- Target protocol -----------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``kubernetes-secret:context/namespace/name[key]``: the context calls go to (this
        target's, else the configured default), ``default`` when neither names one — resolved as
        the workload consumers' ids are, so one cluster has one name in a plan."""
        context = self.clients.context_name(self.context) or "default"
        where = f"{context}/{self.namespace}/{self.name}"
        return f"kubernetes-secret:{where}[{self.key}]"

    def describe(self) -> str:
        """One line for plans."""
        return (
            f"Kubernetes Secret {self.namespace}/{self.name} key {self.key} "
            f"(context {self.context or 'default'})"
        )

    def read(self) -> TargetState:
        """GET the Secret; the value of our data key, the metadata entry describing it, and
        who else owns the Secret (in list read mode, from the namespace's shared LIST)."""
        secret = self._listed() if self.read_mode == "list" and active() else self._get()
        if secret is None:
            return TargetState(value=None, metadata=None, version=None)
        value = self._value(secret)
        metadata = None
        if value is not None:
            entries = _keys_record(secret).get(self.key, {})
            metadata = KeyMetadata.from_dict(entries.get(value.fingerprint))
        return TargetState(
            value=value,
            metadata=metadata,
            version=_resource_version(secret),
            owner=foreign_owner(_metadata(secret), self.foreign_owner_labels),
            owner_allowed=self.allow_foreign_owner,
        )

    def write(self, value: Secret, metadata: KeyMetadata) -> None:
        """Set our data key and its metadata (new + previous entry) in one replace or create."""
        encoded = base64.b64encode(value.reveal().encode("utf-8")).decode("ascii")

        def change(secret: SecretObject) -> None:
            if not isinstance(secret.get("data"), dict):
                secret["data"] = {}
            previous = self._value(secret)
            record = _keys_record(secret)
            entries = record.get(self.key, {})
            kept: dict[str, Any] = {}
            if previous is not None and previous.fingerprint in entries:
                kept[previous.fingerprint] = entries[previous.fingerprint]
            kept[metadata.fingerprint] = _entry(metadata)
            record[self.key] = kept
            secret["data"][self.key] = encoded
            _set_annotations(secret, record)

        self._modify(change, create=True)

    def write_metadata(self, metadata: KeyMetadata) -> None:
        """Replace the metadata entry of ``metadata.fingerprint``; the value is not touched."""

        def change(secret: SecretObject) -> None:
            record = _keys_record(secret)
            entries = record.get(self.key, {})
            entries[metadata.fingerprint] = _entry(metadata)
            record[self.key] = entries
            _set_annotations(secret, record)

        self._modify(change, create=False)

    # -- read-modify-replace ---------------------------------------------------------------------

    def _modify(self, change: Callable[[SecretObject], None], *, create: bool) -> None:
        """Apply ``change`` to the latest Secret and write it, re-reading after each 409
        (:func:`~rotator.clients.kubernetes.retry_on_conflict`)."""
        self._gone = 0

        def attempt() -> None:
            secret = self._get()
            if secret is None:
                if not create:
                    raise TargetInvalid(f"{self.id}: Secret {self.namespace}/{self.name} not found")
                secret = self._new_secret()
                change(secret)
                if not self._create(secret):
                    raise Conflict  # created concurrently: update theirs
                return
            if secret.get("immutable"):
                raise TargetInvalid(f"{self.id}: Secret {self.namespace}/{self.name} is immutable")
            change(secret)
            if not self._replace(secret):
                raise Conflict

        try:
            retry_on_conflict(
                attempt, attempts=self.conflict_attempts, backoff=self.conflict_backoff
            )
        except Conflict:
            pass
        else:
            return
        if self._gone == self.conflict_attempts:
            # Every update was answered 404 although every read found the Secret: the API
            # server will not write it here (an admission or routing problem), not a race.
            raise TargetInvalid(
                f"{self.id}: Secret {self.namespace}/{self.name} exists but every update was "
                f"answered 404 Not Found ({self.conflict_attempts} attempts)"
            )
        raise TargetConflict(
            f"{self.id}: Secret {self.namespace}/{self.name} kept changing under us "
            f"(409 Conflict on {self.conflict_attempts} attempts)",
            delay=_CONFLICT_DELAY,
        ) from None

    def _new_secret(self) -> SecretObject:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                "annotations": {},
            },
            "data": {},
        }

    def _value(self, secret: SecretObject) -> Secret | None:
        raw = _data(secret).get(self.key)
        text = _decode(raw)
        if text is _UNDECODABLE:
            raise TargetInvalid(f"{self.id}: data key {self.key} is not UTF-8 text")
        return Secret(text) if isinstance(text, str) and text else None

    # -- API calls -------------------------------------------------------------------------------

    def _listed(self) -> SecretObject | None:
        """The Secret from the observation's LIST of managed Secrets, else by GET."""
        context = self.clients.context_name(self.context) or "default"
        key = ("kubernetes-secrets", id(self.clients), context, self.namespace)
        listing = shared(key, self._list_managed)
        found = listing.get(self.name)
        return found if found is not None else self._get()

    def _list_managed(self) -> dict[str, SecretObject]:
        """Every Secret of the namespace carrying the rotator's label, by name (all pages)."""
        context = self.clients.context_name(self.context) or "default"
        found: dict[str, SecretObject] = {}
        token: str | None = None
        # Named by namespace: every target sharing the LIST reports the same failure.
        with self._translated("list", f"kubernetes-secret:{context}/{self.namespace}/*"):
            while True:
                query: dict[str, str | int] = {
                    "labelSelector": MANAGED_SELECTOR,
                    "limit": SECRET_PAGE_SIZE,
                }
                if token:
                    query["continue"] = token
                page = self.clients.call(
                    "GET",
                    _COLLECTION_PATH,
                    context=self.context,
                    path_params={"namespace": self.namespace},
                    query=query,
                )
                page = page if isinstance(page, dict) else {}
                for item in page.get("items") or []:
                    name = _metadata(item).get("name") if isinstance(item, dict) else None
                    if isinstance(name, str) and name:
                        found[name] = item
                token = _metadata(page).get("continue") or None
                if not token:
                    return found

    def _get(self) -> SecretObject | None:
        """The Secret, or None when it does not exist."""
        with self._translated("get"):
            try:
                answer = self.clients.call(
                    "GET", _OBJECT_PATH, context=self.context, path_params=self._path_params()
                )
            except Exception as exc:
                if status_of(exc) == 404:
                    return None
                raise
        if not isinstance(answer, dict):
            raise TargetInvalid(f"{self.id}: the API server's answer is not a JSON object")
        return answer

    def _create(self, secret: SecretObject) -> bool:
        """POST the Secret; False when it already exists (someone else created it first)."""
        with self._translated("create"):
            try:
                self.clients.call(
                    "POST",
                    _COLLECTION_PATH,
                    context=self.context,
                    path_params={"namespace": self.namespace},
                    body=secret,
                )
            except Exception as exc:
                if status_of(exc) == 409:
                    return False
                raise
        return True

    def _replace(self, secret: SecretObject) -> bool:
        """PUT the Secret with the resourceVersion read; False on 409 or when it vanished."""
        with self._translated("update"):
            try:
                self.clients.call(
                    "PUT",
                    _OBJECT_PATH,
                    context=self.context,
                    path_params=self._path_params(),
                    body=secret,
                )
            except Exception as exc:
                status = status_of(exc)
                # 404: deleted since the read; the next attempt creates it again.
                if status == 404:
                    self._gone += 1
                    return False
                if status == 409:
                    return False
                raise
        return True

    def _path_params(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name}

    @contextmanager
    def _translated(self, verb: str, where: str | None = None) -> Iterator[None]:
        with translated(
            where=where or self.id,
            verb=verb,
            resource=_RESOURCE,
            namespace=self.namespace,
            timeout=self.clients.request_timeout,
        ):
            yield


# -- ownership ---------------------------------------------------------------------------------


def foreign_owner(metadata: Mapping[str, Any], extra_labels: tuple[str, ...] = ()) -> str | None:
    """Who, other than the rotator, owns an object with this ``metadata``; None when nobody.

    ``metadata`` is the object's ``metadata`` as the API's JSON (``labels``, ``annotations``,
    ``ownerReferences``). The answer names the owner for people: ``Helm release agent``.
    """
    labels: dict[str, str] = dict(_mapping(metadata.get("labels")))
    annotations: dict[str, str] = dict(_mapping(metadata.get("annotations")))
    release = annotations.get(HELM_RELEASE_ANNOTATION)
    if labels.get(MANAGED_BY_LABEL) == "Helm" or release:
        name = release or labels.get("app.kubernetes.io/instance") or "?"
        return f"Helm release {name} ({MANAGED_BY_LABEL}: Helm)"
    if ARGOCD_TRACKING_ANNOTATION in annotations:
        app = annotations[ARGOCD_TRACKING_ANNOTATION].partition(":")[0]
        return f"Argo CD application {app} ({ARGOCD_TRACKING_ANNOTATION})"
    flux = sorted(label for label in labels if label.startswith(FLUX_LABEL_PREFIXES))
    if flux:
        return f"Flux ({flux[0]}: {labels[flux[0]]})"
    references = metadata.get("ownerReferences") or []
    if isinstance(references, list) and references:
        first = _mapping(references[0])
        kind = first.get("kind") or "?"
        name = first.get("name") or "?"
        return f"{kind} {name} (ownerReferences)"
    for label in extra_labels:
        if label in labels:
            return f"the owner marked by label {label}={labels[label]} (foreign_owner_labels)"
    return None


# -- annotations -------------------------------------------------------------------------------


def _entry(metadata: KeyMetadata) -> dict[str, Any]:
    """One record entry: :meth:`KeyMetadata.to_dict` without empty fields (``from_dict``
    restores their defaults), so ``kubectl describe`` stays readable."""
    return {k: v for k, v in metadata.to_dict().items() if v is not None and v is not False}


def _keys_record(secret: SecretObject) -> dict[str, dict[str, Any]]:
    """The parsed ``rotator.stackstate.io/keys`` annotation ({} when absent or damaged)."""
    annotations = _mapping(_metadata(secret).get("annotations"))
    try:
        record = json.loads(annotations.get(KEYS_ANNOTATION) or "{}")
    except ValueError:
        return {}
    if not isinstance(record, dict):
        return {}
    return {
        str(data_key): dict(entries)
        for data_key, entries in record.items()
        if isinstance(entries, dict)
    }


def _set_annotations(secret: SecretObject, record: dict[str, dict[str, Any]]) -> None:
    """Write the JSON record and re-derive every flat annotation from it."""
    metadata = secret.get("metadata")
    if not isinstance(metadata, dict):
        metadata = secret["metadata"] = {}
    if not isinstance(metadata.get("annotations"), dict):
        metadata["annotations"] = {}
    annotations: dict[str, str] = metadata["annotations"]
    annotations[KEYS_ANNOTATION] = json.dumps(record, separators=(",", ":"), sort_keys=True)
    for name in list(annotations):
        if _is_flat(name):
            del annotations[name]
    annotations.update(_flat_annotations(record, _data(secret)))


def _flat_annotations(record: dict[str, dict[str, Any]], data: dict[str, str]) -> dict[str, str]:
    """The human-readable annotations (see the module docstring for the naming rule)."""
    managed = sorted(key for key in record if key in data)
    flat: dict[str, str] = {}
    for data_key in managed:
        text = _decode(data.get(data_key))
        if not isinstance(text, str) or not text:
            continue
        metadata = KeyMetadata.from_dict(record[data_key].get(fingerprint(text)))
        if metadata is None:
            continue
        suffix = "" if len(managed) == 1 else f".{data_key}"
        fields = metadata.to_dict()
        for field in FLAT_FIELDS:
            name = f"{field}{suffix}"
            if fields.get(field) is None or not _valid_annotation_name(name):
                continue
            flat[f"{METADATA_PREFIX}/{name}"] = str(fields[field])
    return flat


def _is_flat(annotation: str) -> bool:
    prefix, _, name = annotation.partition("/")
    if prefix != METADATA_PREFIX:
        return False
    return any(name == field or name.startswith(f"{field}.") for field in FLAT_FIELDS)


def _valid_annotation_name(name: str) -> bool:
    return len(name) <= _MAX_ANNOTATION_NAME and bool(_ANNOTATION_NAME.match(name))


# -- helpers -----------------------------------------------------------------------------------

_UNDECODABLE: Final = object()


def _decode(raw: str | None) -> str | object | None:
    """Base64 ``data`` entry → text; None when absent; :data:`_UNDECODABLE` when not UTF-8."""
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return _UNDECODABLE


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's ``metadata`` ({} when it has none)."""
    return _mapping(obj.get("metadata"))


def _data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's ``data`` (base64 values by data key; {} when it has none)."""
    data = secret.get("data")
    return data if isinstance(data, dict) else {}


def _resource_version(secret: SecretObject) -> str | None:
    version = _metadata(secret).get("resourceVersion")
    return str(version) if version else None
