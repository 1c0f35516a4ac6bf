"""Applying a plan: create, verify, push — stopping a key at its first failure.

Each managed key runs inside its own ``try``: one key's failure becomes a frozen
:class:`KeyResult` and never stops the others (kopf's executor, certbot's renewal loop).

Invariants this module keeps:

- I1: a new key is verified before any target receives it; a failed verify deletes it.
- I3: a key the rotator abandons (failed verify; a push that left it in no target) is deleted at
  once; a key that may have reached a target is left for the next run to repair or sweep.
- I4: values move from StackState to targets in memory only; errors carry no value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from rotator.engine.model import Action, KeyPlan, KeyResult, ObservedKey
from rotator.engine.naming import managed_description
from rotator.errors import RotatorError
from rotator.secrets import Secret
from rotator.stackstate import ApiKey, CreatedKey, StackStateClient
from rotator.targets.base import KeyMetadata, Target

log = structlog.get_logger(__name__)


class StepFailed(Exception):
    """A step failed; ``message`` is what the report shows (never a value)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Applier:
    """Executes the actions of key plans against StackState and the targets."""

    def __init__(self, client: StackStateClient, clock: Callable[[], datetime]) -> None:
        self._client = client
        self._clock = clock

    def apply(self, observed: ObservedKey, plan: KeyPlan) -> KeyResult:
        """Run a plan's actions in order; return the key's outcome."""
        if plan.failed:
            return KeyResult(plan, "failed", plan.reason)
        if not plan.actions:
            return KeyResult(plan, "unchanged")
        bound = log.bind(key=plan.key, decision=plan.decision)
        try:
            if plan.decision == "repair":
                self._repair(observed, plan)
                bound.info("key.repaired")
                return KeyResult(plan, "rotated")
            created = self._rotate(observed, plan)
        except StepFailed as failure:
            bound.error("key.failed", error=failure.message)
            return KeyResult(plan, "failed", failure.message)
        bound.info("key.rotated", new_key_id=created.key.id, new_key_name=created.key.name)
        return KeyResult(plan, "rotated", new_key=created.key)

    # -- repair ----------------------------------------------------------------------------------

    def _repair(self, observed: ObservedKey, plan: KeyPlan) -> None:
        by_id = {t.target.id: t for t in observed.targets}
        for action in plan.actions:
            if action.action != "push" or action.source is None or action.target is None:
                continue
            source = by_id[action.source].state
            assert source is not None and source.value is not None
            metadata = source.managed_metadata or KeyMetadata(
                key_id=None,
                key_name=None,
                kind=plan.kind,
                fingerprint=source.value.fingerprint,
                expires_at=None,
                rotated_at=self._clock(),
            )
            self._push(by_id[action.target].target, source.value, metadata, action)

    # -- rotate ----------------------------------------------------------------------------------

    def _rotate(self, observed: ObservedKey, plan: KeyPlan) -> CreatedKey:
        spec = observed.spec
        now = self._clock()
        assert plan.new_key_name is not None, "a rotation plan names its new key"
        name = plan.new_key_name
        try:
            created = self._client.create_key(
                spec.kind,
                name,
                expiration=now + spec.validity,
                roles=spec.roles,
                description=managed_description(spec.description)
                if spec.kind == "ingestion-api-key"
                else None,
                dedicated_subject=spec.dedicated_subject,
            )
        except RotatorError as exc:
            raise StepFailed(f"create: {exc.message}") from exc
        log.info("key.created", key=spec.name, id=created.key.id, name=created.key.name)

        try:
            verdict = self._client.verify(spec.kind, created.value)
        except RotatorError as exc:
            self._abandon(created.key, f"verify: {exc.message}")
        if not verdict.accepted:
            self._abandon(created.key, f"verify: new key {name} {verdict.reason}")

        current = plan.current
        metadata = KeyMetadata(
            key_id=created.key.id,
            key_name=created.key.name,
            kind=spec.kind,
            fingerprint=created.value.fingerprint,
            expires_at=created.key.expiration,
            rotated_at=now,
            previous_key_id=current.id if current is not None else None,
            previous_key_name=current.name if current is not None else None,
        )
        written = 0
        by_id = {t.id: t for t in spec.targets}
        for action in plan.actions:
            if action.action != "push" or action.target is None:
                continue
            target = by_id[action.target]
            try:
                self._push(target, created.value, metadata, action)
            except StepFailed:
                if written == 0 and not self._holds(target, created.value):
                    self._abandon(
                        created.key,
                        f"push to {target.id} failed before any target held the new key",
                    )
                raise
            written += 1
        return created

    def _push(self, target: Target, value: Secret, metadata: KeyMetadata, action: Action) -> None:
        try:
            target.write(value, metadata)
        except RotatorError as exc:
            raise StepFailed(f"push to {target.id}: {exc.message}") from exc
        log.info(
            "target.written",
            target=target.id,
            fingerprint=metadata.fingerprint,
            detail=action.detail,
        )

    def _holds(self, target: Target, value: Secret) -> bool:
        """Whether a target holds ``value`` after a failed write (None answer: assume it may)."""
        try:
            return target.read().fingerprint == value.fingerprint
        except RotatorError:
            return True

    def _abandon(self, key: ApiKey, message: str) -> None:
        """Delete a key no target depends on (I3), then fail the step with ``message``."""
        try:
            self._client.delete_key(key.kind, key.id, missing_ok=True)
        except RotatorError as exc:
            log.error("key.abandon_failed", id=key.id, name=key.name, error=exc.message)
            raise StepFailed(
                f"{message}; deleting new key {key.name} also failed "
                f"({exc.message}): the next run sweeps it"
            ) from exc
        log.warning("key.abandoned", id=key.id, name=key.name, reason=message)
        raise StepFailed(f"{message}; new key {key.name} deleted")
