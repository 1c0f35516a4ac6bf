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

Connections: each context's client keeps one urllib3 pool per API server of ``pool_size``
connections (default :data:`DEFAULT_POOL_SIZE`); callers that read concurrently size it to their
number of workers, so no connection is opened and thrown away ("Connection pool is full").

Shared by every caller (targets, consumers, the Lease, doctor), so each is written once:

- :func:`map_api_error` / :func:`translated`: the one translation of the client's and urllib3's
  failures into the rotator's errors, in the family of whoever called (``kinds``: targets raise
  ``Target*``, consumers ``Consumer*``, the Lease ``Lease*``; same categories);
- :func:`retry_on_conflict`: a read-modify-write re-read and re-applied after a 409, bounded and
  with exponential backoff (tenacity).

The ``kubernetes`` package is imported on first use, not with this module: importing it costs a
few tenths of a second of CPU that a command without a Kubernetes target does not pay.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from rotator.errors import (
    TARGET_ERRORS,
    ConfigError,
    ErrorKinds,
    RotatorError,
)
from rotator.secrets import redact

if TYPE_CHECKING:
    import urllib3

T = TypeVar("T")

#: Seconds every Kubernetes API call may take before it fails (connect + read, per attempt).
DEFAULT_REQUEST_TIMEOUT: Final = 10.0

#: How many times urllib3 repeats a request whose connection failed (see module docstring).
CONNECTION_RETRIES: Final = 2

#: Connections kept per API server and context (the ``workers`` a caller reads with).
DEFAULT_POOL_SIZE: Final = 8

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
        pool_size: int = DEFAULT_POOL_SIZE,
        environ: Mapping[str, str] | None = None,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> None:
        """Remember where the configuration comes from; nothing is read before the first use.

        ``pool_size`` is how many connections each context's client keeps open (size it to the
        number of concurrent callers); ``environ`` defaults to the process environment (read
        here, once); ``service_account_dir`` is where the in-cluster token and ``ca.crt`` are
        read from.
        """
        if request_timeout <= 0:
            raise ConfigError(f"Kubernetes request timeout must be positive, not {request_timeout}")
        if pool_size < 1:
            raise ConfigError(
                f"Kubernetes connection pool size must be at least 1, not {pool_size}"
            )
        self.pool_size = int(pool_size)
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

    def call(
        self,
        method: str,
        path: str,
        *,
        context: str | None = None,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        parse: bool = True,
    ) -> Any:
        """One API request by path, through the context's ``ApiClient``; the answer's JSON.

        The generic call path: no API class (``CoreV1Api`` alone costs the better part of a
        second of CPU to import, its methods being pydantic-validated) and no model. ``path``
        is a template such as ``/apis/apps/v1/namespaces/{namespace}/deployments/{name}``
        filled (quoted) from ``path_params``; ``body`` is serialised as the API classes do it
        (datetimes by their ``isoformat``). Returns the parsed JSON, or None when the body is
        not JSON. A non-2xx answer raises the client's ``ApiException`` (status, body,
        headers), transport failures raise urllib3's errors: translate both with
        :func:`translated`. Authentication, the timeout (:attr:`request_timeout`) and
        connection retries are those of every other call. ``parse=False``: only the status
        matters; the body is read (the connection goes back to the pool clean) but never
        decoded, and None is returned.
        """
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415 - imported late

        api_client = self.api_client(context)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        verb, url, header_params, serialized, _ = api_client.param_serialize(
            method=method,
            resource_path=path,
            path_params=dict(path_params or {}),
            query_params=[(name, value) for name, value in (query or {}).items()],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api_client.call_api(
            verb, url, header_params=header_params, body=serialized,
            _request_timeout=self.request_timeout,
        )  # fmt: skip
        raw = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        if not parse:
            return None
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            return None

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
        from kubernetes.client import ApiClient, Configuration  # noqa: PLC0415 - imported late
        from urllib3.util.retry import Retry  # noqa: PLC0415 - imported late

        configuration = Configuration()
        if self.in_cluster:
            self._load_in_cluster(configuration, context)
        else:
            self._load_kubeconfig(configuration, context)
        # Retry-After is not honoured here: urllib3 would sleep as long as the server asks,
        # unbounded. A 429/503 reaches the caller, which gets the hint as ``delay``.
        configuration.retries = Retry(total=CONNECTION_RETRIES, respect_retry_after_header=False)
        configuration.connection_pool_maxsize = self.pool_size
        return ApiClient(configuration=configuration)

    def _default_kubeconfig(self) -> str:
        return self._environ.get(_KUBECONFIG_ENV) or str(DEFAULT_KUBECONFIG)

    def _load_in_cluster(self, configuration: Any, context: str | None) -> None:
        if context is not None:
            raise ConfigError(
                f"Kubernetes context {context!r} was asked for, but there is no kubeconfig: "
                "in-cluster configuration has no contexts (set kubernetes.kubeconfig)"
            )
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
        from kubernetes.config.incluster_config import InClusterConfigLoader  # noqa: PLC0415

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
        import yaml  # noqa: PLC0415 - imported late
        from kubernetes import config as k8s_config  # noqa: PLC0415 - imported late
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

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
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
    from kubernetes.config.kube_config import ConfigNode, KubeConfigMerger  # noqa: PLC0415

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
    import yaml  # noqa: PLC0415 - imported late
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

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


# -- error answers: shared by every caller that talks to the API server ---------------------

#: Suggested wait after a 409 before the step is tried again (seconds).
CONFLICT_DELAY: Final = 5.0

#: Longest Status message quoted in one of our errors.
MAX_STATUS_MESSAGE: Final = 300


def status_body(exc: Any) -> dict[str, Any]:
    """The Kubernetes Status of an error answer (an ``ApiException``), or {} when not one."""
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


def retry_after(exc: Any) -> float | None:
    """The Retry-After hint of an error answer (an ``ApiException``), in seconds."""
    headers = exc.headers or {}
    try:
        return float(str(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None


def transport_problem(exc: urllib3.exceptions.HTTPError, timeout: float) -> str:
    """What went wrong below HTTP, without the URL-and-object noise of urllib3's messages."""
    import urllib3.exceptions  # noqa: PLC0415 - imported late (loaded by the failed call)

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


def client_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure :func:`map_api_error` translates: an ``ApiException``, a
    urllib3 error or a kubeconfig credential failure (``ConfigException``)."""
    if "kubernetes" not in sys.modules:
        return False  # no Kubernetes call was made: not one of its failures
    import urllib3.exceptions  # noqa: PLC0415 - imported late
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    return isinstance(exc, ApiException | urllib3.exceptions.HTTPError | ConfigException)


def map_api_error(
    exc: BaseException,
    *,
    where: str,
    verb: str,
    resource: str,
    namespace: str,
    timeout: float,
    kinds: ErrorKinds = TARGET_ERRORS,
) -> RotatorError:
    """Translate a kubernetes-client or urllib3 failure into the rotator's error tree.

    The one translation every caller of the API server uses (targets, consumers, the Lease).
    ``where`` is the caller's id the message starts with; ``verb`` and ``resource`` name the
    call; ``kinds`` is the caller's error family (:data:`~rotator.errors.TARGET_ERRORS`,
    ``CONSUMER_ERRORS``, ``LEASE_ERRORS``). Messages quote at most the Status ``message``
    (redacted), never a response body, which may echo Secret data.

    ==========================  ===========================================================
    credentials cannot load     forbidden
    transport / TLS failure     unavailable
    401, 403                    forbidden
    404                         invalid (a missing namespace is named as such)
    409                         conflict (retry after a short delay)
    429, 5xx                    unavailable (``delay`` from Retry-After)
    other 4xx (400, 422, ...)   invalid
    ==========================  ===========================================================
    """
    import urllib3.exceptions  # noqa: PLC0415 - imported late
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    if isinstance(exc, ConfigException):
        return kinds.forbidden(f"{where}: cannot obtain Kubernetes credentials: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return kinds.unavailable(
            f"{where}: cannot {verb} {resource} in namespace {namespace}: "
            f"{transport_problem(exc, timeout)}"
        )
    if not isinstance(exc, ApiException):
        return kinds.unavailable(f"{where}: cannot {verb} {resource}: {type(exc).__name__}")
    status = exc.status or 0
    body = status_body(exc)
    message = str(body.get("message") or "")
    said = f": {quote_status(message)}" if message else ""
    call = f"{verb} {resource} in namespace {namespace}"
    if status == 0:
        # The client raises status 0 for TLS failures it caught itself.
        lines = str(exc.reason or "").splitlines()
        detail = " ".join(lines[1:2]) or (lines[0] if lines else "no response")
        return kinds.unavailable(f"{where}: cannot {call}: TLS or transport failure: {detail}")
    if status == 401:
        return kinds.forbidden(
            f"{where}: cannot {call}: unauthorized (401), the API server did not accept our "
            "credentials"
        )
    if status == 403:
        return kinds.forbidden(f"{where}: forbidden (403) to {call}{said}")
    if status == 404:
        details = body.get("details")
        kind = details.get("kind") if isinstance(details, dict) else None
        if kind == "namespaces" or f'namespaces "{namespace}" not found' in message:
            return kinds.invalid(f"{where}: namespace {namespace} not found")
        return kinds.invalid(f"{where}: cannot {call}: not found (404){said}")
    if status == 409:
        return kinds.conflict(f"{where}: cannot {call}: conflict (409){said}", delay=CONFLICT_DELAY)
    if status == 429 or status >= 500:
        return kinds.unavailable(
            f"{where}: cannot {call}: API server answered {status}{said}",
            delay=retry_after(exc),
        )
    reason = body.get("reason") or exc.reason or "refused"
    return kinds.invalid(f"{where}: cannot {call}: rejected ({status} {reason}){said}")


@contextmanager
def translated(
    *,
    where: str,
    verb: str,
    resource: str,
    namespace: str,
    timeout: float,
    kinds: ErrorKinds = TARGET_ERRORS,
) -> Iterator[None]:
    """Run the block's API calls; a client failure leaves it as :func:`map_api_error`'s error.

    The client's exception is dropped from the chain (``from None``): its text holds the whole
    response body. Anything else (our own errors included) passes unchanged.
    """
    try:
        yield
    except Exception as exc:
        if not client_failure(exc):
            raise
        raise map_api_error(
            exc,
            where=where,
            verb=verb,
            resource=resource,
            namespace=namespace,
            timeout=timeout,
            kinds=kinds,
        ) from None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an ``ApiException`` (None for any other failure)."""
    if "kubernetes" not in sys.modules:
        return None
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    return exc.status if isinstance(exc, ApiException) else None


# -- optimistic concurrency -------------------------------------------------------------------


class Conflict(Exception):
    """Raised by one attempt of :func:`retry_on_conflict`: the write lost to a concurrent writer
    (409, or a create that someone else made first); read again and re-apply."""


#: Attempts of a read-modify-write before a persistent 409 wins.
DEFAULT_CONFLICT_ATTEMPTS: Final = 5
#: First backoff (seconds) between attempts; doubles each time (0.05 + 0.1 + 0.2 + 0.4 s).
DEFAULT_CONFLICT_BACKOFF: Final = 0.05


def retry_on_conflict(
    attempt: Callable[[], T],
    *,
    attempts: int = DEFAULT_CONFLICT_ATTEMPTS,
    backoff: float = DEFAULT_CONFLICT_BACKOFF,
    conflict: type[BaseException] | tuple[type[BaseException], ...] = Conflict,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` (read, change, write) again while it raises ``conflict``.

    At most ``attempts`` runs (at least one), waiting ``backoff * 2**n`` seconds before the
    (n+2)-th. Every attempt must read afresh: the write it makes carries the
    ``resourceVersion`` of its own read. When every attempt lost, the last ``conflict`` is
    raised for the caller to turn into its own error (naming what kept changing); any other
    exception ends the loop at once.
    """
    from tenacity import (  # noqa: PLC0415 - imported late
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential,
    )

    retrying = Retrying(
        retry=retry_if_exception_type(conflict),
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential(multiplier=backoff, min=0),
        sleep=sleep,
        reraise=True,
    )
    return retrying(attempt)
