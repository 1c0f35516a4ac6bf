"""Applying plans: create, verify, push; switch consumers over; revoke; sweep.

Each managed key runs inside its own ``try``: one key's failure becomes a frozen
:class:`KeyResult` and never stops the others (kopf's executor, certbot's renewal loop).
The new keys of a run are created first, one after the other, and their ids learnt with one
list per kind (a service-token create answers no id): bootstrapping N keys costs N creates and
one list, not N lists. Each key then goes on alone: verify, push, switch-over. Consumer
triggers are collected from every key first and fired afterwards, grouped by workload, so a
workload consuming several keys rotated in one run is restarted once.

Invariants this module keeps:

- I1: a new key is verified before any target receives it; a failed verify deletes it.
- I2: the previous key is deleted only by a ``revoke`` plan, which the planner makes only when
  every consumer switched and the grace period passed.
- I3: a key the rotator abandons (failed verify; a push that left it in no target; a key whose
  run lost its leadership before pushing it) is deleted at once; a key that may have reached a
  target is left for the next run to repair or sweep.
- I4: values move from StackState to targets (and to a ``pass_key: stdin`` command) in memory
  only; errors carry no value.
- I6: a create whose outcome or id is unknown is settled by the client (by the key's unique
  name), never repeated blindly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

import structlog

from rotator.consumers.base import Consumer, SwitchRequest, SwitchState, consumer_token
from rotator.engine.model import (
    Action,
    ConsumerRef,
    Failure,
    KeyPlan,
    KeyRef,
    KeyResult,
    ObservedKey,
    Step,
    TargetRef,
)
from rotator.engine.naming import managed_description
from rotator.engine.observe import observe_consumers
from rotator.engine.ports import ApiKey, CreatedKey, KeyStore, PendingKey
from rotator.errors import RotatorError
from rotator.secrets import Secret
from rotator.targets.base import KeyMetadata, Target

log = structlog.get_logger(__name__)


class StepFailed(Exception):
    """A step failed; ``failure`` is what the report shows (never a value)."""

    def __init__(
        self,
        message: str,
        step: Step,
        cause: RotatorError | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.failure = (
            Failure.of(step, cause, message)
            if cause is not None
            else Failure(step, "human", "StepFailed", message)
        )


@dataclass(frozen=True)
class Trigger:
    """A consumer action one key needs: fired after every key was applied, coalesced."""

    consumer: Consumer
    state: SwitchState
    request: SwitchRequest

    @property
    def group(self) -> str:
        """Triggers of one group are fired once together (one restart per workload)."""
        return self.state.workload or f"{self.request.managed_key}/{self.state.id}"


@dataclass(frozen=True)
class _Created:
    """A new key of this run, created before the key's other steps (or why it was not)."""

    #: When it was created: its expiry is counted from here and its metadata says so.
    at: datetime
    key: CreatedKey | None = None
    failed: StepFailed | None = None


@dataclass
class _Applied:
    result: KeyResult
    triggers: list[Trigger]
    #: The value and metadata the targets hold after this key's actions (for recording).
    value: Secret | None = None
    metadata: KeyMetadata | None = None


class Applier:
    """Executes the actions of key plans against StackState, the targets and the consumers."""

    def __init__(
        self,
        client: KeyStore,
        clock: Callable[[], datetime],
        guard: Callable[[], bool] | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._guard = guard or (lambda: True)

    # -- per key -------------------------------------------------------------------------------

    def apply_all(
        self,
        planned: Sequence[tuple[ObservedKey, KeyPlan]],
        progress: Callable[[int, int, KeyResult], None] | None = None,
    ) -> list[KeyResult]:
        """Create the run's new keys, apply every plan, then fire the consumer triggers they
        collected, coalesced."""
        created = self._create_all(planned)
        applied = []
        for index, (observed, plan) in enumerate(planned, start=1):
            new = created.get(index - 1)
            # A rotation whose create the guard held back is not applied either.
            if self._guard() and (new is not None or not _creates(plan)):
                applied.append(self._apply(observed, plan, new))
            else:
                log.warning("key.skipped", key=plan.key, reason="guard refused (leadership)")
                if new is not None and new.key is not None:
                    self._discard(new.key)  # created for this run, held by no target (I3)
                applied.append(
                    _Applied(KeyResult(plan, "unchanged", "not applied: leadership lost"), [])
                )
            if progress is not None:
                progress(index, len(planned), applied[-1].result)
        if self._guard():
            self._fire(applied, [observed for observed, _ in planned])
        return [a.result for a in applied]

    def _create_all(self, planned: Sequence[tuple[ObservedKey, KeyPlan]]) -> dict[int, _Created]:
        """Create the new key of every plan that rotates (the guard is asked before each), then
        learn their ids with one list per kind; by the plan's index."""
        started: dict[int, tuple[datetime, PendingKey]] = {}
        created: dict[int, _Created] = {}
        for index, (observed, plan) in enumerate(planned):
            if not _creates(plan) or not self._guard():
                continue
            spec = observed.spec
            now = self._clock()
            assert plan.new_key_name is not None, "a rotation plan names its new key"
            try:
                started[index] = (
                    now,
                    self._client.start_create(
                        spec.kind,
                        plan.new_key_name,
                        expiration=now + spec.validity,
                        roles=spec.roles,
                        description=managed_description(spec.description)
                        if spec.kind == "ingestion-api-key"
                        else None,
                        dedicated_subject=spec.dedicated_subject,
                    ),
                )
            except RotatorError as exc:
                failed = StepFailed(f"create: {exc.message}", "create", exc)
                created[index] = _Created(now, failed=failed)
        if not started:
            return created
        outcomes = self._client.finish_creates([pending for _, pending in started.values()])
        for (index, (now, _)), outcome in zip(started.items(), outcomes, strict=True):
            if isinstance(outcome, RotatorError):
                failed = StepFailed(f"create: {outcome.message}", "create", outcome)
                created[index] = _Created(now, failed=failed)
            else:
                key = outcome.key
                log.info("key.created", key=planned[index][1].key, id=key.id, name=key.name)
                created[index] = _Created(now, key=outcome)
        return created

    def _discard(self, created: CreatedKey) -> None:
        """Delete a key created this run that no target holds; a failure is left to the sweep."""
        key = created.key
        try:
            self._client.delete_key(key.kind, key.id, missing_ok=True)
        except RotatorError as exc:
            log.error("key.abandon_failed", id=key.id, name=key.name, error=exc.message)
            return
        log.warning("key.abandoned", id=key.id, name=key.name, reason="not applied")

    def _apply(self, observed: ObservedKey, plan: KeyPlan, new: _Created | None) -> _Applied:
        bound = log.bind(key=plan.key, decision=plan.decision)
        if plan.failed:
            failure = plan.failure
            triggers: list[Trigger] = []
            if any(a.source is not None for a in plan.actions):
                # Blocked, but the value in use can already be adopted into the rotator's own
                # Secret (a migration waiting for its helm upgrade): copying changes no reader.
                try:
                    self._repair(observed, plan)
                except StepFailed as failed:
                    failure = failed.failure
            elif any(a.action == "restart" for a in plan.actions):
                # Past switch_timeout: still restart what needs it, so the switch-over can
                # finish once its cause is fixed; the key stays failed until it does.
                triggers = self._switch(observed, plan).triggers
            bound.error(
                "key.failed",
                step=failure.step if failure else None,
                category=failure.category if failure else None,
                error=plan.reason,
            )
            return _Applied(KeyResult(plan, "failed", plan.reason, failure=failure), triggers)
        if not plan.actions:
            return _Applied(KeyResult(plan, "unchanged"), [])
        try:
            applied = self._main(observed, plan, new)
            swept = self._sweep(plan)
        except StepFailed as failed:
            bound.error(
                "key.failed",
                step=failed.failure.step,
                category=failed.failure.category,
                error=failed.message,
            )
            return _Applied(KeyResult(plan, "failed", failed.message, failure=failed.failure), [])
        if swept and applied.result.outcome == "unchanged":
            applied.result = dataclasses.replace(applied.result, outcome="revoked")
        bound.info("key.applied", outcome=applied.result.outcome, swept=swept)
        return applied

    def _main(self, observed: ObservedKey, plan: KeyPlan, new: _Created | None) -> _Applied:
        if plan.decision == "bootstrap" and any(a.source is not None for a in plan.actions):
            self._repair(observed, plan)  # adoption: the value in use, copied; no new key
            return _Applied(KeyResult(plan, "rotated"), [])
        if plan.decision in ("bootstrap", "rotate"):
            assert new is not None, "_create_all created the key of every rotating plan"
            created, metadata = self._rotate(observed, plan, new)
            triggers, failure = self._consumer_triggers(observed, plan, created.value, metadata)
            result = KeyResult(plan, "rotated", new_key=created.key)
            if failure is not None:
                log.error(
                    "key.failed",
                    key=plan.key,
                    step=failure.step,
                    category=failure.category,
                    error=failure.message,
                )
                result = dataclasses.replace(
                    result, outcome="failed", error=failure.message, failure=failure
                )
            return _Applied(result, triggers, created.value, metadata)
        if plan.decision == "repair":
            copied = self._repair(observed, plan)
            if copied is None or copied[1].key_id is None or copied[1].switched:
                return _Applied(KeyResult(plan, "rotated"), [])
            # A push that stopped half-way: every target holds the value now, so its
            # consumers are told to switch in this run (the switch-over has waited already).
            value, metadata = copied
            triggers, failure = self._consumer_triggers(observed, plan, value, metadata)
            result = KeyResult(plan, "rotated")
            if failure is not None:
                result = dataclasses.replace(
                    result, outcome="failed", error=failure.message, failure=failure
                )
            return _Applied(result, triggers, value, metadata)
        if plan.decision == "switch":
            return self._switch(observed, plan)
        if plan.decision == "revoke":
            took = self._revoke(observed, plan)
            return _Applied(KeyResult(plan, "revoked", switch_duration=took), [])
        # ok / blocked plans may still carry sweep actions.
        return _Applied(KeyResult(plan, "unchanged"), [])

    # -- repair ----------------------------------------------------------------------------------

    def _repair(self, observed: ObservedKey, plan: KeyPlan) -> tuple[Secret, KeyMetadata] | None:
        """Copy the plan's source value to its targets; the value and metadata copied."""
        copied: tuple[Secret, KeyMetadata] | None = None
        by_id = {t.target.id: t for t in observed.targets}
        if observed.adopt_source is not None:
            by_id.setdefault(observed.adopt_source.target.id, observed.adopt_source)
        for action in plan.actions:
            if action.action != "push" or action.source is None:
                continue
            assert isinstance(action.subject, TargetRef)
            source = by_id[action.source.id].state
            assert source is not None and source.value is not None
            metadata = source.managed_metadata or KeyMetadata(
                key_id=None,
                key_name=None,
                kind=plan.kind,
                fingerprint=source.value.fingerprint,
                expires_at=None,
                rotated_at=self._clock(),
            )
            self._push(by_id[action.subject.id].target, source.value, metadata, action)
            copied = (source.value, metadata)
        return copied

    # -- rotate ----------------------------------------------------------------------------------

    def _rotate(
        self, observed: ObservedKey, plan: KeyPlan, new: _Created
    ) -> tuple[CreatedKey, KeyMetadata]:
        """Verify the key created for this plan, then push it to every target."""
        spec = observed.spec
        if new.failed is not None:
            raise new.failed
        assert new.key is not None and plan.new_key_name is not None
        created, now, name = new.key, new.at, plan.new_key_name

        try:
            verdict = self._client.verify(spec.kind, created.value)
        except RotatorError as exc:
            self._abandon(created.key, f"verify: {exc.message}", "verify", exc)
        if not verdict.accepted:
            # StackState does not let the new key ingest: its roles (or the kind's permission)
            # are wrong, which retrying will not change.
            self._abandon(
                created.key,
                f"verify: new key {name} {verdict.reason}",
                "verify",
                failure=Failure("verify", "fix-permissions", "KeyRefused", ""),
            )

        current = plan.current
        previous_id = current.id if current is not None else None
        previous_name = current.name if current is not None else None
        if current is not None and current.adopted and previous_name is None:
            # StackState cannot tell which key an adopted value belongs to: remember the value's
            # fingerprint so status can remind people that its key is still live.
            held = next((t.fingerprint for t in observed.targets if t.fingerprint), None)
            previous_name = f"adopted value {held}" if held else None
        metadata = KeyMetadata(
            key_id=created.key.id,
            key_name=created.key.name,
            kind=spec.kind,
            fingerprint=created.value.fingerprint,
            expires_at=created.key.expiration,
            rotated_at=now,
            previous_key_id=previous_id,
            previous_key_name=previous_name,
            previous_kind=_previous_kind(observed),
            emergency=plan.emergency,
        )
        written = 0
        by_id = {t.id: t for t in spec.targets}
        for action in plan.actions:
            if action.action != "push" or not isinstance(action.subject, TargetRef):
                continue
            target = by_id[action.subject.id]
            try:
                self._push(target, created.value, metadata, action)
            except StepFailed as failed:
                if written == 0 and not self._holds(target, created.value):
                    self._abandon(
                        created.key,
                        f"push to {target.id} failed before any target held the new key",
                        "push",
                        failure=failed.failure,
                    )
                raise
            written += 1
        log.info("key.rotated", key=spec.name, new_key_id=created.key.id, previous=previous_id)
        return created, metadata

    def _push(self, target: Target, value: Secret, metadata: KeyMetadata, action: Action) -> None:
        try:
            target.write(value, metadata)
        except RotatorError as exc:
            raise StepFailed(f"push to {target.id}: {exc.message}", "push", exc) from exc
        log.info(
            "target.written",
            target=target.id,
            fingerprint=metadata.fingerprint,
            detail=action.detail,
        )

    def _holds(self, target: Target, value: Secret) -> bool:
        """Whether a target holds ``value`` after a failed write (unknown: assume it may)."""
        try:
            return target.read().fingerprint == value.fingerprint
        except RotatorError:
            return True

    def _abandon(
        self,
        key: ApiKey,
        message: str,
        step: Step,
        cause: RotatorError | None = None,
        *,
        failure: Failure | None = None,
    ) -> NoReturn:
        """Delete a key no target depends on (I3), then fail ``step`` with ``message``."""
        try:
            self._client.delete_key(key.kind, key.id, missing_ok=True)
        except RotatorError as exc:
            log.error("key.abandon_failed", id=key.id, name=key.name, error=exc.message)
            failed = StepFailed(
                f"{message}; deleting new key {key.name} also failed "
                f"({exc.message}): the next run sweeps it",
                step,
                cause,
            )
            raise _with_failure(failed, failure) from exc
        log.warning("key.abandoned", id=key.id, name=key.name, reason=message)
        raise _with_failure(
            StepFailed(f"{message}; new key {key.name} deleted", step, cause), failure
        )

    # -- switch over -----------------------------------------------------------------------------

    def _consumer_triggers(
        self, observed: ObservedKey, plan: KeyPlan, value: Secret, metadata: KeyMetadata
    ) -> tuple[list[Trigger], Failure | None]:
        """Right after a push: which consumers must act for the new value."""
        request = SwitchRequest(
            observed.spec.name, metadata.fingerprint, metadata.rotated_at, value
        )
        seen = observe_consumers(observed.spec, request, frozenset())
        planned = {
            a.subject.id
            for a in plan.actions
            if a.action in ("restart", "await") and isinstance(a.subject, ConsumerRef)
        }
        triggers: list[Trigger] = []
        failure: Failure | None = None
        for obs in seen:
            if obs.error is not None:
                # The push happened, but this consumer cannot be told to switch: the key fails
                # in this run (the old key stays: nothing is revoked before it switched).
                message = f"consumer {obs.consumer.id}: {obs.error}; previous key kept"
                failure = failure or Failure(
                    "restart",
                    obs.category or "retry",
                    obs.error_type or "ConsumerUnobservable",
                    message,
                )
                continue
            # Only what the plan listed runs: a reader that appeared after the plan was made
            # is the next run's business (it counts once its own rollout completes).
            triggers += [
                Trigger(obs.consumer, state, request)
                for state in obs.states
                if state.phase == "needs-trigger" and planned & {obs.consumer.id, state.id}
            ]
            failed = [state for state in obs.states if state.failed]
            if failed:
                message = f"consumer {failed[0].id}: {failed[0].reason}; previous key kept"
                failure = failure or Failure(
                    "restart", failed[0].category or "human", "ConsumerFailed", message
                )
        return triggers, failure

    def _switch(self, observed: ObservedKey, plan: KeyPlan) -> _Applied:
        held = observed.held_metadata()
        value = _held_value(observed)
        assert held is not None and value is not None
        request = SwitchRequest(plan.key, held.fingerprint, held.rotated_at, value)
        states = [s for c in observed.consumers for s in c.states]
        if plan.completes_switch:
            # Nothing to protect: the switch-over is complete as soon as consumers switched.
            now = self._clock()
            self._record(
                observed,
                dataclasses.replace(held, switched=True, switched_at=held.switched_at or now),
            )
            log.info("key.switched", key=plan.key, previous=None)
            return _Applied(
                KeyResult(plan, "unchanged", switch_duration=now - held.rotated_at), [], value, held
            )
        if all(s.switched for s in states):
            if held.switched_at is None:
                # Every consumer switched: the grace period starts now; remember when.
                self._record(observed, dataclasses.replace(held, switched_at=self._clock()))
            return _Applied(KeyResult(plan, "waiting"), [], value, held)
        triggers = [
            Trigger(c.consumer, s, request)
            for c in observed.consumers
            for s in c.states
            if s.phase == "needs-trigger"
        ]
        return _Applied(KeyResult(plan, "waiting"), triggers, value, held)

    def _fire(self, applied: list[_Applied], observed: list[ObservedKey]) -> None:
        """Fire the collected triggers, one call per group, and fold results into the keys."""
        groups: dict[str, list[tuple[int, Trigger]]] = {}
        for index, item in enumerate(applied):
            for trigger in item.triggers:
                groups.setdefault(trigger.group, []).append((index, trigger))
        for members in groups.values():
            first = members[0][1]
            requests = [t.request for _, t in members]
            cause: RotatorError | None = None
            try:
                state = first.consumer.trigger(first.state, requests)
            except RotatorError as exc:
                cause = exc
                state = dataclasses.replace(first.state, phase="failed", reason=exc.message)
            log.info(
                "consumer.triggered",
                consumer=state.id,
                phase=state.phase,
                keys=[r.managed_key for r in requests],
            )
            for index, trigger in members:
                item = applied[index]
                if state.failed and item.result.outcome != "failed":
                    # (A key that already failed, e.g. past switch_timeout, keeps its failure.)
                    message = f"consumer {state.id}: {state.reason}; previous key kept"
                    log.error(
                        "key.failed",
                        key=trigger.request.managed_key,
                        step="restart",
                        category=cause.category if cause is not None else state.category or "human",
                        error=message,
                    )
                    item.result = dataclasses.replace(
                        item.result,
                        outcome="failed",
                        error=message,
                        failure=Failure.of("restart", cause, message)
                        if cause is not None
                        else Failure(
                            "restart", state.category or "human", "ConsumerFailed", message
                        ),
                    )
                elif state.switched and item.metadata is not None:
                    self._record_done(observed[index], item, trigger)

    def _record_done(self, observed: ObservedKey, item: _Applied, trigger: Trigger) -> None:
        """A consumer whose effect cannot be observed later (a command) succeeded: record it."""
        assert item.metadata is not None
        token = consumer_token(trigger.consumer.id)
        if token in item.metadata.done:
            return
        item.metadata = dataclasses.replace(
            item.metadata, done=tuple(sorted({*item.metadata.done, token}))
        )
        try:
            self._record(observed, item.metadata)
        except StepFailed as failed:
            item.result = dataclasses.replace(
                item.result, outcome="failed", error=failed.message, failure=failed.failure
            )

    def _record(self, observed: ObservedKey, metadata: KeyMetadata) -> None:
        """Write ``metadata`` (for the value all targets hold) to every target."""
        for target in observed.spec.targets:
            try:
                target.write_metadata(metadata)
            except RotatorError as exc:
                raise StepFailed(
                    f"recording progress in {target.id}: {exc.message}", "switch", exc
                ) from exc

    # -- revoke and sweep ------------------------------------------------------------------------

    def _revoke(self, observed: ObservedKey, plan: KeyPlan) -> timedelta:
        """Delete the previous key if the plan says so and record the switch; returns how
        long the switch-over took."""
        held = observed.held_metadata()
        assert held is not None
        revoked = held.previous_revoked
        for action in plan.actions:
            if action.action == "revoke" and isinstance(action.subject, KeyRef):
                self._delete(plan, action.subject, action)
                revoked = True
        self._record(
            observed,
            dataclasses.replace(
                held,
                switched=True,
                switched_at=held.switched_at or self._clock(),
                previous_revoked=revoked,
            ),
        )
        log.info("key.revoked", key=plan.key, previous=held.previous_key_id, deleted=revoked)
        return (held.switched_at or self._clock()) - held.rotated_at

    def _sweep(self, plan: KeyPlan) -> int:
        swept = 0
        for action in plan.actions:
            if action.action == "sweep" and isinstance(action.subject, KeyRef):
                self._delete(plan, action.subject, action)
                swept += 1
        return swept

    def _delete(self, plan: KeyPlan, key: KeyRef, action: Action) -> None:
        key_id = key.id
        try:
            self._client.delete_key(key.kind, key_id, missing_ok=True)
        except RotatorError as exc:
            step: Step = "sweep" if action.action == "sweep" else "revoke"
            raise StepFailed(f"{action.action} {key_id}: {exc.message}", step, exc) from exc
        log.info(f"key.{action.action}", key=plan.key, id=key_id, detail=action.detail)


def _previous_kind(observed: ObservedKey) -> str | None:
    """The kind of the key a rotation replaces, when it is not the managed key's kind now
    (the configuration changed ``kind``): the revoke must delete it as what it is."""
    held = observed.held_metadata()
    if held is None or not held.kind or held.kind == observed.spec.kind:
        return None
    return held.kind


def _with_failure(failed: StepFailed, failure: Failure | None) -> StepFailed:
    """``failed``, carrying ``failure`` (the original cause's) when one is given."""
    if failure is not None:
        failed.failure = dataclasses.replace(failure, message=failed.message)
    return failed


def _held_value(observed: ObservedKey) -> Secret | None:
    for obs in observed.targets:
        if obs.state is not None and obs.state.value is not None:
            return obs.state.value
    return None


def _creates(plan: KeyPlan) -> bool:
    """Whether applying ``plan`` creates a key (a rotation or bootstrap; not an adoption)."""
    if plan.failed or not plan.actions or plan.decision not in ("bootstrap", "rotate"):
        return False
    return not any(a.source is not None for a in plan.actions)
