"""Results of every shape with any message text, for tests that labels, alert events and
readiness come from a failure's fields and never from its words (shared by several modules)."""

from __future__ import annotations

from datetime import datetime

from hypothesis import strategies as st

from rotator.daemon.metrics import CATEGORIES, STEPS
from rotator.engine.model import CurrentKey, Failure, KeyPlan, KeyResult

DECISIONS = ("ok", "bootstrap", "rotate", "repair", "switch", "revoke", "blocked")
OUTCOMES = ("unchanged", "rotated", "waiting", "revoked", "failed")
ERROR_TYPES = (
    "TargetUnavailable",
    "TargetForbidden",
    "StackStateUnreachable",
    "StackStateServerError",
    "SwitchTimeout",
    "SwitchBlocked",
    "ForeignOwner",
)

#: Message texts: random ones, and the prefixes that older code parsed for steps and events.
messages = (
    st.sampled_from(
        [
            "cannot list service-token keys: server answered 500",
            "switch_timeout: 1 consumer(s) not switched",
            "push to vault-kv:secret/agent: sealed",
            "consumer deployment/agent: paused",
            "verify: new key not accepted",
        ]
    )
    | st.text()
)

#: (decision, outcome, (step, category) or None, error type): everything but the words.
Shape = tuple[str, str, tuple[str, str] | None, str]
shapes = st.tuples(
    st.sampled_from(DECISIONS),
    st.sampled_from(OUTCOMES),
    st.none() | st.tuples(st.sampled_from(STEPS), st.sampled_from(CATEGORIES)),
    st.sampled_from(ERROR_TYPES),
)


def shaped(
    shape: Shape, message: str, *, key: str = "agent", expires: datetime | None = None
) -> KeyResult:
    """A result of managed key ``key`` with ``shape`` whose every message (plan reason,
    error, failure message) is ``message``."""
    decision, outcome, where, error_type = shape
    failure = None
    if where is not None:
        failure = Failure(where[0], where[1], error_type, message)  # type: ignore[arg-type]
    plan = KeyPlan(
        key=key,
        kind="service-token",
        decision=decision,  # type: ignore[arg-type]
        reason=message,
        current=CurrentKey(1, f"{key}-20260101T000000Z", expires),
        failed=outcome == "failed",
        failure=failure,
    )
    return KeyResult(
        plan,
        outcome,  # type: ignore[arg-type]
        message if outcome == "failed" else None,
        failure=failure,
    )
