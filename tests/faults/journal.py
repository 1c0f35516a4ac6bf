"""Emulators that write every exchange into one journal, in one global order, and take a
snapshot of the world at the instant a StackState key is deleted.

Each emulator keeps its own request log; none says which of two requests to *different*
emulators came first. Invariant I2 is about exactly that order (the DELETE of the old key in
StackState after the restart PATCH and the rollout in Kubernetes), so the fault tests run
subclasses that also append each logged exchange to a shared :class:`Journal` with a global
sequence number. The subclasses change no answer: they only observe.

At a StackState DELETE that took effect, :class:`JournaledStackState` calls the journal's
``probe`` before the answer leaves (the key is gone, the client does not know yet); the fault
world's probe records what every target held and how far the consumer's rollout was at that
very instant (:class:`Deletion`). A key deleted while a target still holds it, or before its
consumer demonstrably switched away from it, is then visible after the fact.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from rotator_sandbox._server import LoggedRequest, Request, Response
from rotator_sandbox.kubernetes import KubernetesEmulator
from rotator_sandbox.stackstate import StackStateEmulator
from rotator_sandbox.vault import VaultEmulator

#: A DELETE of one StackState key, either kind.
_DELETE: Final = re.compile(
    r"/api/security/(?:(?P<tokens>tokens)|ingestion/api_keys)/(?P<id>-?[0-9]+)"
)


@dataclass(frozen=True)
class Exchange:
    """One logged request of one emulator, at its place in the global order.

    ``status``/``response_body`` are what the emulator's logic answered, even when the answer
    was then dropped (a request processed whose answer was lost still took effect); both are
    None/empty when the request never reached the logic (an injected failure, an aborted
    hold). ``answered`` is whether the client got an answer at all.
    """

    seq: int
    service: str
    method: str
    path: str
    status: int | None
    body: bytes
    response_body: bytes
    answered: bool


@dataclass(frozen=True)
class DeletedKey:
    """A StackState key a DELETE just removed."""

    kind: str
    key_id: int
    name: str
    value: str


@dataclass(frozen=True)
class Deletion:
    """A key deletion, with the world as it was when the deletion took effect."""

    #: Journal length at that instant: exchanges with a smaller ``seq`` happened before it.
    seq: int
    key: DeletedKey
    #: What the probe saw (see ``FaultWorld.probe``); ``error`` when the probe itself failed.
    seen: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Journal:
    """Every exchange of the journaled emulators, in the order they were logged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._deletions: list[Deletion] = []
        #: Called at each effective DELETE; returns what it saw (runs in a server thread).
        self.probe: Callable[[DeletedKey], dict[str, Any]] | None = None

    def add(self, service: str, entry: LoggedRequest, processed: Response | None) -> None:
        """Append one logged request; ``processed`` is what the emulator's logic answered
        (None when it never ran; the log line holds the injected answer, if any, then)."""
        answered = entry.status is not None
        if processed is None and answered:
            status, response_body = entry.status, entry.response_body  # an injected answer
        elif processed is None:
            status, response_body = None, b""
        else:
            status, response_body = processed.status, processed.encoded()
        with self._lock:
            self._exchanges.append(
                Exchange(
                    len(self._exchanges),
                    service,
                    entry.method,
                    entry.path,
                    status,
                    entry.body,
                    response_body,
                    answered,
                )
            )

    def deleted(self, key: DeletedKey) -> None:
        """Record a deletion that just took effect, with the probe's view of the world."""
        with self._lock:
            seq = len(self._exchanges)
        seen: dict[str, Any] = {}
        error = None
        if self.probe is not None:
            try:
                seen = self.probe(key)
            except Exception as exc:  # noqa: BLE001 - a probe bug must show up as a finding
                error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._deletions.append(Deletion(seq, key, seen, error))

    @property
    def exchanges(self) -> list[Exchange]:
        """A copy of every exchange so far."""
        with self._lock:
            return list(self._exchanges)

    @property
    def deletions(self) -> list[Deletion]:
        """A copy of every deletion so far."""
        with self._lock:
            return list(self._deletions)


class _Processed:
    """What the emulator's logic answered each request in flight, by request identity (a
    dropped answer is logged as None; the journal still needs to know it took effect)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[int, Response] = {}

    def remember(self, request: Request, response: Response) -> Response:
        with self._lock:
            self._answers[id(request)] = response
        return response

    def take(self, request: Request) -> Response | None:
        with self._lock:
            return self._answers.pop(id(request), None)


class JournaledStackState(StackStateEmulator):
    """The StackState emulator, journaling its exchanges and probing at each deletion."""

    def __init__(self, journal: Journal, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.journal = journal
        self._processed = _Processed()

    def record(self, request: Request, response: Response | None) -> None:
        """Log as usual, then journal the line just logged."""
        with self.lock:
            super().record(request, response)
            self.journal.add("stackstate", self.log[-1], self._processed.take(request))

    def handle(self, request: Request) -> Response:
        """Answer as usual; a DELETE that removed a key is reported to the journal first."""
        match = _DELETE.fullmatch(request.path) if request.method == "DELETE" else None
        before: DeletedKey | None = None
        if match is not None:
            kind = "service-token" if match["tokens"] else "ingestion-api-key"
            key_id = int(match["id"])
            with self.lock:
                listed = {k["id"]: k for k in self.keys(kind)}  # type: ignore[arg-type]
                if key_id in listed:
                    value = self.value_of(kind, key_id)  # type: ignore[arg-type]
                    before = DeletedKey(kind, key_id, str(listed[key_id]["name"]), value)
        response = super().handle(request)
        if before is not None and response.status < 300:
            self.journal.deleted(before)
        return self._processed.remember(request, response)


class JournaledVault(VaultEmulator):
    """The Vault emulator, journaling its exchanges."""

    def __init__(self, journal: Journal, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.journal = journal
        self._processed = _Processed()

    def handle(self, request: Request) -> Response:
        """Answer as usual, remembering the answer for the journal."""
        return self._processed.remember(request, super().handle(request))

    def record(self, request: Request, response: Response | None) -> None:
        """Log as usual, then journal the line just logged."""
        with self.lock:
            super().record(request, response)
            self.journal.add("vault", self.log[-1], self._processed.take(request))


class JournaledKubernetes(KubernetesEmulator):
    """The Kubernetes emulator, journaling its exchanges."""

    def __init__(self, journal: Journal, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.journal = journal
        self._processed = _Processed()

    def handle(self, request: Request) -> Response:
        """Answer as usual, remembering the answer for the journal."""
        return self._processed.remember(request, super().handle(request))

    def record(self, request: Request, response: Response | None) -> None:
        """Log as usual, then journal the line just logged."""
        with self.lock:
            super().record(request, response)
            self.journal.add("kubernetes", self.log[-1], self._processed.take(request))
