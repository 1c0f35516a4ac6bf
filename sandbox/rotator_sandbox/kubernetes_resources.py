"""The resource types the Kubernetes emulator serves, their discovery documents and tables.

Discovery is served in the legacy form (``/api``, ``/apis``, ``/api/v1``, ``/apis/<g>/<v>``):
client-go asks for the aggregated ``apidiscovery.k8s.io/v2`` document first and falls back to the
legacy ones when the answer is plain ``application/json``, which is what the emulator sends.

A minimal ``/openapi/v3`` is served too. It only lists, per group-version, the PATCH operations
with their ``fieldValidation`` query parameter: that is how kubectl decides that the server does
field validation itself, so ``kubectl create -f`` and ``kubectl apply -f`` work without
``--validate=false`` (without it, kubectl would try to download the full OpenAPI v2 schema).

Tables (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``) carry the same columns the
real server prints for each type, with ages rendered by :func:`human_duration`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rotator_sandbox.kubernetes_events import last_seen, object_cell

#: The Kubernetes version the emulator claims to be (kubectl 1.32 is the client we test).
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-rotator-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_CRUD_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource (``secrets``, ``deployments.apps``, ...)."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _CRUD_VERBS
    workload: bool = False
    #: Whether PUT may create a missing object (the strategy's ``AllowCreateOnUpdate``).
    create_on_update: bool = False
    #: Whether ``metadata.generation`` is maintained (workloads and batch types, as upstream).
    has_generation: bool = False
    #: Whether a read-only ``/status`` subresource is served.
    status_subresource: bool = False
    #: A review (SelfSubjectAccessReview, TokenReview): create-only, answered, never stored.
    review: bool = False

    @property
    def api_version(self) -> str:
        """``v1`` or ``apps/v1``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        """``/api/v1`` or ``/apis/apps/v1``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str, name: str = "") -> str:
        """The URL path of a collection or of one object."""
        base = self.prefix
        if self.namespaced:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


SECRETS = ResourceType("", "v1", "secrets", "secret", "Secret")
NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    namespaced=False,
    short_names=("ns",),
    verbs=("create", "get", "list", "patch", "update", "watch"),
    status_subresource=True,
)
DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    short_names=("deploy",),
    categories=("all",),
    workload=True,
    has_generation=True,
    status_subresource=True,
)
DAEMONSETS = ResourceType(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    short_names=("ds",),
    categories=("all",),
    workload=True,
    has_generation=True,
    status_subresource=True,
)
STATEFULSETS = ResourceType(
    "apps",
    "v1",
    "statefulsets",
    "statefulset",
    "StatefulSet",
    short_names=("sts",),
    categories=("all",),
    workload=True,
    has_generation=True,
    status_subresource=True,
)
JOBS = ResourceType(
    "batch",
    "v1",
    "jobs",
    "job",
    "Job",
    categories=("all",),
    has_generation=True,
    status_subresource=True,
)
CRONJOBS = ResourceType(
    "batch",
    "v1",
    "cronjobs",
    "cronjob",
    "CronJob",
    short_names=("cj",),
    categories=("all",),
    has_generation=True,
    status_subresource=True,
)
LEASES = ResourceType(
    "coordination.k8s.io", "v1", "leases", "lease", "Lease", create_on_update=True
)
SELF_SUBJECT_ACCESS_REVIEWS = ResourceType(
    "authorization.k8s.io",
    "v1",
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    "SelfSubjectAccessReview",
    namespaced=False,
    verbs=("create",),
    review=True,
)
#: Core v1 Events (``kubectl describe`` and ``kubectl get events`` read them).
EVENTS = ResourceType(
    "",
    "v1",
    "events",
    "event",
    "Event",
    short_names=("ev",),
    create_on_update=True,
)
TOKEN_REVIEWS = ResourceType(
    "authentication.k8s.io",
    "v1",
    "tokenreviews",
    "tokenreview",
    "TokenReview",
    namespaced=False,
    verbs=("create",),
    review=True,
)

#: Every served type, keyed by (group, version, plural).
RESOURCES: dict[tuple[str, str, str], ResourceType] = {
    (r.group, r.version, r.plural): r
    for r in (
        SECRETS,
        NAMESPACES,
        DEPLOYMENTS,
        DAEMONSETS,
        STATEFULSETS,
        JOBS,
        CRONJOBS,
        LEASES,
        EVENTS,
        SELF_SUBJECT_ACCESS_REVIEWS,
        TOKEN_REVIEWS,
    )
}

#: Group-versions in the order discovery lists them (the real server's order, thinned out).
GROUP_VERSIONS: tuple[tuple[str, str], ...] = (
    ("", "v1"),
    ("apps", "v1"),
    ("authentication.k8s.io", "v1"),
    ("authorization.k8s.io", "v1"),
    ("batch", "v1"),
    ("coordination.k8s.io", "v1"),
)


def resource_for(group: str, version: str, plural: str) -> ResourceType | None:
    """The served type at a path, or None."""
    return RESOURCES.get((group, version, plural))


def resolve(kind_or_plural: str) -> ResourceType:
    """Find a type by plural, singular, kind or short name (``deploy``, ``Deployment``...)."""
    wanted = kind_or_plural.lower()
    for rtype in RESOURCES.values():
        names = {rtype.plural, rtype.singular, rtype.kind.lower(), *rtype.short_names}
        names |= (
            {f"{n}.{rtype.group}" for n in (rtype.plural, rtype.singular)} if rtype.group else set()
        )
        if wanted in names:
            return rtype
    raise KeyError(f"unknown resource {kind_or_plural!r}")


# -- discovery -------------------------------------------------------------------------------


def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    """``GET /apis``."""
    groups = [_group(g) for g, _ in GROUP_VERSIONS if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    """``GET /apis/<group>``, or None for a group the emulator does not serve."""
    if not group or all(g != group for g, _ in GROUP_VERSIONS):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<g>/<v>``, or None for an unserved group-version."""
    if (group, version) not in GROUP_VERSIONS:
        return None
    resources: list[dict[str, Any]] = []
    for rtype in RESOURCES.values():
        if (rtype.group, rtype.version) != (group, version):
            continue
        entry: dict[str, Any] = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": list(rtype.verbs),
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        if rtype.status_subresource:
            resources.append(
                {
                    "name": f"{rtype.plural}/status",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": ["get"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root() -> dict[str, Any]:
    """``GET /openapi/v3``: where each group-version's document lives."""
    return {
        "paths": {
            _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=sandbox"}
            for g, v in GROUP_VERSIONS
        }
    }


def openapi_v3_document(gv_path: str) -> dict[str, Any] | None:
    """A minimal OpenAPI v3 document for one group-version (PATCH operations and parameters)."""
    for group, version in GROUP_VERSIONS:
        if _gv_path(group, version) != gv_path:
            continue
        paths: dict[str, Any] = {}
        for rtype in RESOURCES.values():
            if (rtype.group, rtype.version) != (group, version) or "patch" not in rtype.verbs:
                continue
            placeholder = rtype.path("{namespace}", "{name}")
            paths[placeholder] = {
                "patch": {
                    "operationId": f"patch{rtype.kind}",
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {
                        "group": group,
                        "version": version,
                        "kind": rtype.kind,
                    },
                    "parameters": [
                        {"name": p, "in": "query", "schema": {"type": "string"}}
                        for p in ("dryRun", "fieldManager", "fieldValidation")
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes (rotator sandbox)", "version": "v1.32.0"},
            "paths": paths,
        }
    return None


# -- tables ----------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration`` from apimachinery: ``45s``, ``3m20s``, ``5h10m``, ``12d``."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = total // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


Cell = Callable[[dict[str, Any], datetime], Any]


@dataclass(frozen=True)
class Column:
    """One table column: header, type, priority (1 = only with ``-o wide``), cell function."""

    name: str
    type: str
    cell: Cell
    priority: int = 0
    format: str = ""
    description: str = ""


def _age(obj: dict[str, Any], now: datetime) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return human_duration((now - then).total_seconds())


def _status(obj: dict[str, Any], key: str) -> int:
    value = obj.get("status", {}).get(key, 0)
    return int(value) if isinstance(value, int) else 0


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a workload, Job (``spec.template``) or CronJob
    (``spec.jobTemplate.spec.template``); {} when there is none."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return template if isinstance(template, dict) else {}


def _containers(obj: dict[str, Any], key: str) -> str:
    containers = (pod_template(obj).get("spec") or {}).get("containers") or []
    return ",".join(str(c.get(key, "")) for c in containers)


def _selector(obj: dict[str, Any]) -> str:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    selector = spec.get("selector", {}) or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        op = str(expr.get("operator", "")).lower()
        parts.append(f"{expr.get('key')} {op} ({values})" if values else f"{expr.get('key')}")
    return ",".join(parts) or "<none>"


def _node_selector(obj: dict[str, Any]) -> str:
    selector = (pod_template(obj).get("spec") or {}).get("nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _job_status(obj: dict[str, Any]) -> str:
    """``printJob``'s status: the first condition that holds, else Running."""
    holding = {
        c.get("type")
        for c in (obj.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    if obj.get("metadata", {}).get("deletionTimestamp") and not holding & {"Complete", "Failed"}:
        return "Terminating"
    for ctype in ("Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if ctype in holding:
            return ctype
    return "Running"


def _job_completions(obj: dict[str, Any]) -> str:
    spec = obj.get("spec") or {}
    succeeded = _status(obj, "succeeded")
    completions = spec.get("completions")
    if isinstance(completions, int):
        return f"{succeeded}/{completions}"
    parallelism = spec.get("parallelism")
    parallelism = parallelism if isinstance(parallelism, int) else 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(obj: dict[str, Any], now: datetime) -> str:
    status = obj.get("status") or {}
    started = _parse_time(status.get("startTime"))
    if started is None:
        return ""
    finished = _parse_time(status.get("completionTime")) or now
    return human_duration((finished - started).total_seconds())


def _last_schedule(obj: dict[str, Any], now: datetime) -> str:
    last = _parse_time((obj.get("status") or {}).get("lastScheduleTime"))
    return "<none>" if last is None else human_duration((now - last).total_seconds())


_NAME = Column(
    "Name",
    "string",
    lambda o, _n: o["metadata"]["name"],
    format="name",
    description="Name must be unique within a namespace.",
)
_AGE = Column(
    "Age",
    "string",
    _age,
    description="CreationTimestamp is a timestamp representing the server time when this object "
    "was created.",
)
_CONTAINERS = Column(
    "Containers",
    "string",
    lambda o, _n: _containers(o, "name"),
    priority=1,
    description="Names of each container in the template.",
)
_IMAGES = Column(
    "Images",
    "string",
    lambda o, _n: _containers(o, "image"),
    priority=1,
    description="Images referenced by each container in the template.",
)
_SELECTOR = Column(
    "Selector",
    "string",
    lambda o, _n: _selector(o),
    priority=1,
    description="Label selector for pods.",
)


def _event_age(obj: dict[str, Any], now: datetime) -> str:
    seen = last_seen(obj)
    return "<unknown>" if seen is None else human_duration((now - seen).total_seconds())


TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "secrets": (
        _NAME,
        Column(
            "Type", "string", lambda o, _n: o.get("type", ""), description="The type of the secret"
        ),
        Column(
            "Data",
            "integer",
            lambda o, _n: len(o.get("data") or {}),
            description="The number of entries in the data",
        ),
        _AGE,
    ),
    "namespaces": (
        _NAME,
        Column(
            "Status",
            "string",
            lambda o, _n: o.get("status", {}).get("phase", ""),
            description="The status of the namespace",
        ),
        _AGE,
    ),
    "deployments": (
        _NAME,
        Column(
            "Ready",
            "string",
            lambda o, _n: f"{_status(o, 'readyReplicas')}/{o.get('spec', {}).get('replicas', 1)}",
            description="Number of the pod with ready state",
        ),
        Column(
            "Up-to-date",
            "integer",
            lambda o, _n: _status(o, "updatedReplicas"),
            description=(
                "Total number of non-terminated pods targeted by this deployment that have the "
                "desired template spec."
            ),
        ),
        Column(
            "Available",
            "integer",
            lambda o, _n: _status(o, "availableReplicas"),
            description=(
                "Total number of available pods (ready for at least minReadySeconds) targeted by "
                "this deployment."
            ),
        ),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    "daemonsets": (
        _NAME,
        Column(
            "Desired",
            "integer",
            lambda o, _n: _status(o, "desiredNumberScheduled"),
            description="The total number of nodes that should be running the daemon pod.",
        ),
        Column(
            "Current",
            "integer",
            lambda o, _n: _status(o, "currentNumberScheduled"),
            description="The number of nodes that are running at least 1 daemon pod.",
        ),
        Column(
            "Ready",
            "integer",
            lambda o, _n: _status(o, "numberReady"),
            description=(
                "The number of nodes that should be running the daemon pod and have one or more of "
                "the daemon pod running and ready."
            ),
        ),
        Column(
            "Up-to-date",
            "integer",
            lambda o, _n: _status(o, "updatedNumberScheduled"),
            description="The total number of nodes that are running updated daemon pod",
        ),
        Column(
            "Available",
            "integer",
            lambda o, _n: _status(o, "numberAvailable"),
            description=(
                "The number of nodes that should be running the daemon pod and have one or more of "
                "the daemon pod running and available."
            ),
        ),
        Column(
            "Node Selector",
            "string",
            lambda o, _n: _node_selector(o),
            description=(
                "NodeSelector is a selector which must be true for the pod to fit on a node."
            ),
        ),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    "statefulsets": (
        _NAME,
        Column(
            "Ready",
            "string",
            lambda o, _n: f"{_status(o, 'readyReplicas')}/{o.get('spec', {}).get('replicas', 1)}",
            description="Number of the pod with ready state",
        ),
        _AGE,
        _CONTAINERS,
        _IMAGES,
    ),
    "jobs": (
        _NAME,
        Column(
            "Status",
            "string",
            lambda o, _n: _job_status(o),
            description="Status of the job.",
        ),
        Column(
            "Completions",
            "string",
            lambda o, _n: _job_completions(o),
            description="The number of pods which reached phase Succeeded.",
        ),
        Column(
            "Duration",
            "string",
            _job_duration,
            description="Time required to complete the job.",
        ),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    "cronjobs": (
        _NAME,
        Column(
            "Schedule",
            "string",
            lambda o, _n: (o.get("spec") or {}).get("schedule", ""),
            description="The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
        ),
        Column(
            "Timezone",
            "string",
            lambda o, _n: (o.get("spec") or {}).get("timeZone") or "<none>",
            description="The time zone name for the given schedule.",
        ),
        Column(
            "Suspend",
            "boolean",
            lambda o, _n: bool((o.get("spec") or {}).get("suspend")),
            description="This flag tells the controller to suspend subsequent executions.",
        ),
        Column(
            "Active",
            "integer",
            lambda o, _n: len((o.get("status") or {}).get("active") or []),
            description="A list of pointers to currently running jobs.",
        ),
        Column(
            "Last Schedule",
            "string",
            _last_schedule,
            description="Information when was the last time the job was successfully scheduled.",
        ),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _SELECTOR,
    ),
    "leases": (
        _NAME,
        Column(
            "Holder",
            "string",
            lambda o, _n: o.get("spec", {}).get("holderIdentity", ""),
            description="HolderIdentity contains the identity of the holder of a current lease.",
        ),
        _AGE,
    ),
    "events": (
        Column("Last Seen", "string", _event_age),
        Column("Type", "string", lambda o, _n: str(o.get("type") or "")),
        Column("Reason", "string", lambda o, _n: str(o.get("reason") or "")),
        Column("Object", "string", lambda o, _n: object_cell(o)),
        Column("Message", "string", lambda o, _n: str(o.get("message") or "")),
    ),
}


def table(
    rtype: ResourceType,
    objects: list[dict[str, Any]],
    now: datetime,
    *,
    resource_version: str,
    include_object: str = "PartialObjectMetadata",
    list_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``objects`` with the type's columns."""
    columns = TABLE_COLUMNS[rtype.plural]
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [c.cell(obj, now) for c in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    metadata.update(list_meta or {})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            }
            for c in columns
        ],
        "rows": rows,
    }
