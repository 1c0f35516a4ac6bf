"""The ``synced-secret`` consumer: a Kubernetes Secret that ESO or VSO syncs from a vault-kv target.

The External Secrets Operator (an ``ExternalSecret``) or the Vault Secrets Operator (a
``VaultStaticSecret``) copies the value the rotator pushed to Vault into a Secret, on its own
refresh schedule. The workloads reading that Secret can only switch once the copy happened, so
this consumer is the evidence for it: it GETs the Secret, base64-decodes ``data[key]`` and
compares the value's :func:`~rotator.secrets.fingerprint` with the fingerprint of the value the
targets hold. Only fingerprints are compared, shown and logged, never the value.

=================================  =========================================================
what the Secret holds              state
=================================  =========================================================
the request's fingerprint          ``switched`` — "synced: holds sha256:…"
no Secret, no key, an empty value  ``pending`` — "not synced yet: …"
another value                      ``pending`` — "still holds sha256:<other>"
bytes that are not UTF-8 text      ``pending`` — "holds a value that is not UTF-8 text"
=================================  =========================================================

It never says ``needs-trigger``: the operator does the work, and the engine's
``switch_timeout`` bounds the wait (a sync that never comes ends in a switch-timeout alert).
:meth:`SyncedSecretConsumer.trigger` is therefore never called by the engine and, should it be,
acts on nothing and returns the state unchanged. (Forcing a refresh, e.g. ESO's ``force-sync``
annotation on the ``ExternalSecret``, would need write access to the operator's objects, which a
consumer that only reads is better off without.)

The ``done`` list of the targets' metadata is ignored: the Secret itself is the evidence, read
again on every run.

Errors reading the Secret are translated in one place, :func:`map_error` (the Kubernetes
client's one translation, in the ``Consumer*`` family)::

    404 ..................................... not an error: "not synced yet"
    401, 403 ................................ ConsumerForbidden (verb, resource, namespace)
    429, 5xx ................................ ConsumerUnavailable (``delay`` from Retry-After)
    urllib3 errors (refused, reset, DNS,
      timeouts), TLS failures ............... ConsumerUnavailable
    other 4xx ............................... ConsumerInvalid
    kubeconfig credential refresh failed .... ConsumerForbidden

Messages carry the API server's Status ``message`` (which names objects and users, never Secret
data) passed through :func:`rotator.secrets.redact`, never a response body; the client's
exceptions are dropped from the chain (``from None``) because their text holds the whole body.
Every call passes ``_request_timeout``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Literal

from rotator.clients.kubernetes import KubeClients, map_api_error, status_of, translated
from rotator.consumers.base import Resolution, SwitchPhase, SwitchRequest, SwitchState
from rotator.errors import CONSUMER_ERRORS, ConsumerInvalid, RotatorError
from rotator.secrets import fingerprint

_RESOURCE: Final = "secrets"


class SyncedSecretConsumer:
    """A data key of a Secret an operator syncs from Vault; switched once it holds the value."""

    def __init__(
        self,
        clients: KubeClients,
        *,
        namespace: str,
        name: str,
        key: str,
        context: str | None = None,
    ) -> None:
        self.clients = clients
        self.namespace = namespace
        self.name = name
        self.key = key
        self.context = context

    # -- Consumer protocol ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        """``synced-secret:context/namespace/name[key]``: the context calls go to (resolved like
        the other Kubernetes ids), ``default`` when none is named."""
        context = self.clients.context_name(self.context) or "default"
        return f"synced-secret:{context}/{self.namespace}/{self.name}[{self.key}]"

    @property
    def plan_action(self) -> Literal["restart", "await"]:
        """How rotation plans list this consumer."""
        return "await"

    def describe(self) -> str:
        """One line for plans and logs."""
        return (
            f"Secret {self.namespace}/{self.name} key {self.key} synced by ESO/VSO "
            f"(context {self.context or 'default'})"
        )

    def resolve(self) -> Resolution:
        """Nothing to resolve ahead: the synced Secret may only appear once the operator syncs
        the first value, so its absence is judged during the switch-over."""
        return Resolution(self.id)

    def observe(self, request: SwitchRequest, done: frozenset[str]) -> list[SwitchState]:
        """GET the Secret and compare the fingerprint of ``data[key]`` with the request's.

        ``done`` is ignored (the Secret is the evidence). Raises a
        :class:`~rotator.errors.ConsumerError` when the Secret cannot be read.
        """
        secret = self._get()
        where = f"Secret {self.namespace}/{self.name}"
        if secret is None:
            return [self._state("pending", f"not synced yet: {where} not found")]
        data = secret.get("data")
        raw = data.get(self.key) if isinstance(data, dict) else None
        if not raw:
            return [self._state("pending", f"not synced yet: {where} has no value for {self.key}")]
        try:
            text = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return [
                self._state(
                    "pending", f"{where} key {self.key} holds a value that is not UTF-8 text"
                )
            ]
        held = fingerprint(text)
        if held == request.fingerprint:
            return [self._state("switched", f"synced: holds {held}")]
        return [self._state("pending", f"still holds {held}, waiting for {request.fingerprint}")]

    def trigger(self, state: SwitchState, requests: Sequence[SwitchRequest]) -> SwitchState:
        """Do nothing and return ``state``: the operator syncs on its own (see module docstring)."""
        return state

    # -- internals -------------------------------------------------------------------------------

    def _state(self, phase: SwitchPhase, reason: str) -> SwitchState:
        return SwitchState(id=self.id, phase=phase, reason=reason)

    def _get(self) -> dict[str, Any] | None:
        """The Secret as raw JSON, or None when it (or its namespace) does not exist."""
        with self._translated("get"):
            try:
                answer = self.clients.call(
                    "GET",
                    "/api/v1/namespaces/{namespace}/secrets/{name}",
                    context=self.context,
                    path_params={"namespace": self.namespace, "name": self.name},
                )
            except Exception as exc:
                # The operator has not created it yet: waiting, not failing.
                if status_of(exc) == 404:
                    return None
                raise
        if not isinstance(answer, dict):
            raise ConsumerInvalid(f"{self.id}: the API server's answer is not a JSON object")
        return answer

    @contextmanager
    def _translated(self, verb: str) -> Iterator[None]:
        with translated(
            where=self.id,
            verb=verb,
            resource=_RESOURCE,
            namespace=self.namespace,
            timeout=self.clients.request_timeout,
            kinds=CONSUMER_ERRORS,
        ):
            yield


def map_error(
    exc: BaseException, *, where: str, verb: str, namespace: str, timeout: float
) -> RotatorError:
    """Translate a failure reading the synced Secret (see
    :func:`rotator.clients.kubernetes.map_api_error`), in the ``Consumer*`` family.

    A 404 is handled by the caller: a Secret not synced yet is not an error.
    """
    return map_api_error(
        exc,
        where=where,
        verb=verb,
        resource=_RESOURCE,
        namespace=namespace,
        timeout=timeout,
        kinds=CONSUMER_ERRORS,
    )
