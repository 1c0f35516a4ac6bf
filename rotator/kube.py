"""Kubernetes API clients per kubeconfig context, shared by every Kubernetes adapter.

One rotator may serve many clusters: a target, consumer or the leader-election Lease names a
kubeconfig *context*, and :class:`KubeClients` hands out one ``kubernetes.client.ApiClient`` per
context, built on first use and cached. Where the configuration comes from:

1. the ``kubeconfig`` given (the configuration's ``kubernetes.kubeconfig``);
2. otherwise, when ``KUBERNETES_SERVICE_HOST`` is set, the pod's in-cluster configuration
   (service-account token and CA under :data:`SERVICE_ACCOUNT_DIR`; the token file is re-read
   about every minute by the client, so projected tokens keep working);
3. otherwise ``$KUBECONFIG`` (a ``:``-separated list, as kubectl reads it), else
   ``~/.kube/config``.

A context of ``None`` means ``default_context``, and when that is ``None`` too, the kubeconfig's
``current-context``. In-cluster configuration has no contexts: naming one there is a
:class:`~rotator.errors.ConfigError`.

Every client gets its own ``Configuration``: the library's process-wide default configuration is
never read nor written, so clusters cannot leak into each other. Refreshed credentials (OIDC,
GCP) are not written back into the kubeconfig file, which is often a read-only mount.

The python client has no timeout by default: every call made through these clients must pass
``_request_timeout=clients.request_timeout``. urllib3 retries a failed connection at most
:data:`CONNECTION_RETRIES` times (a request never sent is safe to repeat; a read error is retried
only for idempotent methods, and a PUT carrying a ``resourceVersion`` that already applied gets
409 on the repeat), so a black-holed API server costs at most
``(CONNECTION_RETRIES + 1) * request_timeout``. urllib3's default of sleeping for as long as a
429/503 ``Retry-After`` asks is switched off: those answers reach the adapter, which passes the
hint on as the error's ``delay``.

Logging: the client's own loggers (``client``, ``urllib3``) are left at their levels; neither
logs request or response bodies (urllib3 logs method, path and status at DEBUG). Only the
client's ``Configuration.debug`` switch prints bodies (through ``http.client``), and it is never
turned on here.

A missing or invalid kubeconfig, an unknown context, or an incomplete in-cluster environment is a
:class:`~rotator.errors.ConfigError` naming the file or context.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import ConfigNode, KubeConfigMerger
from urllib3.util.retry import Retry

from rotator.errors import (
    ConfigError,
    TargetConflict,
    TargetError,
    TargetForbidden,
    TargetInvalid,
    TargetUnavailable,
)
from rotator.secrets import redact

#: Seconds every Kubernetes API call may take before it fails (connect + read, per attempt).
DEFAULT_REQUEST_TIMEOUT: Final = 10.0

#: How many times urllib3 repeats a request whose connection failed (see module docstring).
CONNECTION_RETRIES: Final = 2

#: Where Kubernetes mounts the pod's service-account token and cluster CA.
SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")

#: The kubeconfig kubectl reads when neither a path nor ``$KUBECONFIG`` is given.
DEFAULT_KUBECONFIG: Final = Path("~/.kube/config")

_SERVICE_HOST_ENV: Final = "KUBERNETES_SERVICE_HOST"
_KUBECONFIG_ENV: Final = "KUBECONFIG"


class KubeClients:
    """One ``ApiClient`` per kubeconfig context, built lazily and cached; thread-safe."""

    def __init__(
        self,
        kubeconfig: Path | None = None,
        default_context: str | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        *,
        environ: Mapping[str, str] | None = None,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> None:
        """Remember where the configuration comes from; nothing is read before the first use.

        ``environ`` defaults to the process environment (read here, once);
        ``service_account_dir`` is where the in-cluster token and ``ca.crt`` are read from.
        """
        if request_timeout <= 0:
            raise ConfigError(f"Kubernetes request timeout must be positive, not {request_timeout}")
        env = dict(os.environ if environ is None else environ)
        self.kubeconfig = kubeconfig
        self.default_context = default_context
        self.request_timeout = float(request_timeout)
        self._environ = env
        self._service_account_dir = service_account_dir
        self._lock = threading.Lock()
        self._clients: dict[str | None, Any] = {}

    # -- where the configuration comes from --------------------------------------------------------

    @property
    def in_cluster(self) -> bool:
        """True when no kubeconfig is given and the process runs in a pod."""
        return self.kubeconfig is None and bool(self._environ.get(_SERVICE_HOST_ENV))

    @property
    def source(self) -> str:
        """Where the configuration is read from, for messages: a kubeconfig path or in-cluster."""
        if self.kubeconfig is not None:
            return str(self.kubeconfig)
        if self.in_cluster:
            return "in-cluster configuration"
        return self._default_kubeconfig()

    def context_name(self, context: str | None = None) -> str | None:
        """The context a call for ``context`` uses; None means the kubeconfig's current one."""
        return context or self.default_context

    # -- clients ---------------------------------------------------------------------------------

    def api_client(self, context: str | None = None) -> Any:
        """The cached ``kubernetes.client.ApiClient`` of ``context`` (built on first use)."""
        name = self.context_name(context)
        with self._lock:
            cached = self._clients.get(name)
            if cached is None:
                cached = self._build(name)
                self._clients[name] = cached
            return cached

    def core(self, context: str | None = None) -> Any:
        """``CoreV1Api`` (Secrets, Pods, Namespaces) of ``context``."""
        return k8s_client.CoreV1Api(self.api_client(context))

    def apps(self, context: str | None = None) -> Any:
        """``AppsV1Api`` (Deployments, DaemonSets, StatefulSets) of ``context``."""
        return k8s_client.AppsV1Api(self.api_client(context))

    def batch(self, context: str | None = None) -> Any:
        """``BatchV1Api`` for ``context`` (Jobs and CronJobs)."""
        return k8s_client.BatchV1Api(self.api_client(context))

    def coordination(self, context: str | None = None) -> Any:
        """``CoordinationV1Api`` (Leases) of ``context``."""
        return k8s_client.CoordinationV1Api(self.api_client(context))

    def close(self) -> None:
        """Close every cached client's connection pool; later calls build new clients."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for api_client in clients:
            api_client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"KubeClients(source={self.source!r}, default_context={self.default_context!r}, "
            f"request_timeout={self.request_timeout})"
        )

    # -- building --------------------------------------------------------------------------------

    def _build(self, context: str | None) -> Any:
        configuration = k8s_client.Configuration()
        if self.in_cluster:
            self._load_in_cluster(configuration, context)
        else:
            self._load_kubeconfig(configuration, context)
        # Retry-After is not honoured here: urllib3 would sleep as long as the server asks,
        # unbounded. A 429/503 reaches the caller, which gets the hint as ``delay``.
        configuration.retries = Retry(total=CONNECTION_RETRIES, respect_retry_after_header=False)
        return k8s_client.ApiClient(configuration=configuration)

    def _default_kubeconfig(self) -> str:
        return self._environ.get(_KUBECONFIG_ENV) or str(DEFAULT_KUBECONFIG)

    def _load_in_cluster(self, configuration: Any, context: str | None) -> None:
        if context is not None:
            raise ConfigError(
                f"Kubernetes context {context!r} was asked for, but there is no kubeconfig: "
                "in-cluster configuration has no contexts (set kubernetes.kubeconfig)"
            )
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]  # untyped kubernetes.config
            token_filename=str(self._service_account_dir / "token"),
            cert_filename=str(self._service_account_dir / "ca.crt"),
            environ=self._environ,
        )
        try:
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]  # untyped kubernetes.config
        except (ConfigException, OSError) as exc:
            raise ConfigError(
                f"in-cluster Kubernetes configuration: {_config_problem(exc)} "
                f"(service account files under {self._service_account_dir})"
            ) from None

    def _load_kubeconfig(self, configuration: Any, context: str | None) -> None:
        where = self.source
        paths = [Path(p).expanduser() for p in where.split(os.pathsep) if p]
        if not any(path.is_file() for path in paths):
            raise ConfigError(f"kubeconfig {where}: file not found")
        try:
            contexts, current = _contexts(where)
        except (ConfigException, yaml.YAMLError, OSError, TypeError, AttributeError) as exc:
            # TypeError/AttributeError: a YAML document that is not a kubeconfig mapping.
            raise ConfigError(f"kubeconfig {where}: invalid: {_config_problem(exc)}") from None
        names = sorted(contexts)
        if context is None and not current:
            raise ConfigError(
                f"kubeconfig {where}: no current-context and no context configured "
                f"(contexts: {', '.join(names) or 'none'})"
            )
        if context is not None and context not in names:
            raise ConfigError(
                f"kubeconfig {where}: no context {context!r} "
                f"(contexts: {', '.join(names) or 'none'})"
            )
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]  # untyped kubernetes.config
                config_file=where,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError) as exc:
            shown = context if context is not None else f"{current} (current-context)"
            raise ConfigError(
                f"kubeconfig {where}, context {shown}: {_config_problem(exc)}"
            ) from None


def _contexts(where: str) -> tuple[list[str], str | None]:
    """Context names and current-context of a kubeconfig, merged the way the client merges.

    ``KubeConfigMerger`` is what ``load_kube_config`` itself reads; asking the loader instead
    would fail on a kubeconfig without ``current-context`` even when a context is named.
    """
    merged = KubeConfigMerger(where).config  # type: ignore[no-untyped-call]  # untyped kubernetes.config
    if merged is None:
        raise ConfigException("no configuration found")
    data = merged.value
    if not isinstance(data, dict):
        raise TypeError("top level is not a mapping")
    names = []
    for entry in data.get("contexts") or []:
        value = entry.value if isinstance(entry, ConfigNode) else entry
        if isinstance(value, dict) and value.get("name"):
            names.append(str(value["name"]))
    current = data.get("current-context")
    return names, str(current) if current else None


def _config_problem(exc: BaseException) -> str:
    """A short description of a configuration failure that cannot echo a credential.

    YAML errors show only the problem and the line (their default text quotes the offending
    line, which may hold a token); file errors show the path and reason.
    """
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        line = f" at line {mark.line + 1}" if mark is not None else ""
        return f"not valid YAML{line}: {exc.problem}"
    if isinstance(exc, yaml.YAMLError):
        return "not valid YAML"
    if isinstance(exc, OSError):
        return f"{exc.filename or 'file'}: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, ConfigException):
        return str(exc)
    return f"not a kubeconfig ({type(exc).__name__})"


# -- error answers: shared by every adapter that talks to the API server ---------------------

#: Suggested wait after a 409 before the step is tried again (seconds).
CONFLICT_DELAY: Final = 5.0

#: Longest Status message quoted in one of our errors.
MAX_STATUS_MESSAGE: Final = 300


def status_body(exc: ApiException) -> dict[str, Any]:
    """The Kubernetes Status of an error answer, or {} when the body is not one."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) and body.get("kind") == "Status" else {}


def quote_status(message: Any) -> str:
    """A Status message fit to quote: one line, known secrets masked, shortened."""
    text = redact(" ".join(str(message).split()))
    if len(text) <= MAX_STATUS_MESSAGE:
        return text
    return text[: MAX_STATUS_MESSAGE - 3] + "..."


def retry_after(exc: ApiException) -> float | None:
    """The Retry-After hint of an error answer, in seconds."""
    headers = exc.headers or {}
    try:
        return float(str(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None


def transport_problem(exc: urllib3.exceptions.HTTPError, timeout: float) -> str:
    """What went wrong below HTTP, without the URL-and-object noise of urllib3's messages."""
    cause: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        cause = exc.reason
    # NewConnectionError subclasses ConnectTimeoutError (urllib3 2.x): test it first.
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return "API server host name does not resolve"
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        # "<connection>: Failed to establish a new connection: [Errno 111] Connection refused"
        return "cannot connect to the API server: " + str(cause).rsplit(": ", 1)[-1]
    if isinstance(cause, urllib3.exceptions.TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, urllib3.exceptions.ProtocolError):
        return "connection lost before the API server answered"
    return f"transport failure ({type(cause).__name__})"


def map_api_error(
    exc: BaseException,
    *,
    where: str,
    verb: str,
    resource: str,
    namespace: str,
    timeout: float,
) -> TargetError:
    """Translate a kubernetes-client or urllib3 failure into the rotator's error tree.

    The one translation every adapter talking to the API server uses (targets, consumers, the
    Lease lock wraps it too). ``where`` is the adapter id the message starts with; ``verb``
    and ``resource`` name the call. Messages quote at most the Status ``message`` (redacted),
    never a response body, which may echo Secret data.

    ==========================  ===========================================================
    credentials cannot load     TargetForbidden
    transport / TLS failure     TargetUnavailable
    401, 403                    TargetForbidden
    404                         TargetInvalid (a missing namespace is named as such)
    409                         TargetConflict (retry after a short delay)
    429, 5xx                    TargetUnavailable (``delay`` from Retry-After)
    other 4xx (400, 422, ...)   TargetInvalid
    ==========================  ===========================================================
    """
    if isinstance(exc, ConfigException):
        return TargetForbidden(f"{where}: cannot obtain Kubernetes credentials: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return TargetUnavailable(
            f"{where}: cannot {verb} {resource} in namespace {namespace}: "
            f"{transport_problem(exc, timeout)}"
        )
    if not isinstance(exc, ApiException):
        return TargetUnavailable(f"{where}: cannot {verb} {resource}: {type(exc).__name__}")
    status = exc.status or 0
    body = status_body(exc)
    message = str(body.get("message") or "")
    said = f": {quote_status(message)}" if message else ""
    call = f"{verb} {resource} in namespace {namespace}"
    if status == 0:
        # The client raises status 0 for TLS failures it caught itself.
        lines = str(exc.reason or "").splitlines()
        detail = " ".join(lines[1:2]) or (lines[0] if lines else "no response")
        return TargetUnavailable(f"{where}: cannot {call}: TLS or transport failure: {detail}")
    if status == 401:
        return TargetForbidden(
            f"{where}: cannot {call}: unauthorized (401), the API server did not accept our "
            "credentials"
        )
    if status == 403:
        return TargetForbidden(f"{where}: forbidden (403) to {call}{said}")
    if status == 404:
        details = body.get("details")
        kind = details.get("kind") if isinstance(details, dict) else None
        if kind == "namespaces" or f'namespaces "{namespace}" not found' in message:
            return TargetInvalid(f"{where}: namespace {namespace} not found")
        return TargetInvalid(f"{where}: cannot {call}: not found (404){said}")
    if status == 409:
        return TargetConflict(f"{where}: cannot {call}: conflict (409){said}", delay=CONFLICT_DELAY)
    if status == 429 or status >= 500:
        return TargetUnavailable(
            f"{where}: cannot {call}: API server answered {status}{said}",
            delay=retry_after(exc),
        )
    reason = body.get("reason") or exc.reason or "refused"
    return TargetInvalid(f"{where}: cannot {call}: rejected ({status} {reason}){said}")
