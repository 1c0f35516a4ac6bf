"""The rotation policy: ``defaults:``, each key's overrides, and the effective :class:`KeyPolicy`.

Every managed key exposes its effective policy (``key.policy``): the ``defaults:`` section merged
with the key's overrides by :func:`resolve_policy`, percentages resolved, so no code downstream
ever reads ``defaults``. :func:`policy_problems` holds the consistency rules (``rotate_before``
against ``validity``, ``switch_timeout + grace_period``, ``alert_before`` and the schedule);
``Defaults`` applies them to itself and :class:`~rotator.config.RotatorConfig` to every key.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from pydantic import Field, model_validator

from rotator.config.base import ConfigModel, raise_problems
from rotator.config.types import (
    CronExpression,
    Duration,
    PositiveDuration,
    RotateBefore,
    Validity,
)
from rotator.timespec import Percentage, format_duration

if TYPE_CHECKING:
    from rotator.config.keys import ManagedKey


class Schedule(ConfigModel):
    """When the rotator checks keys: every ``interval``, or at the times of a ``cron`` line."""

    interval: PositiveDuration | None = None
    """Time between runs (1h when neither interval nor cron is given)."""
    cron: CronExpression | None = None
    """Crontab expression (UTC) of the runs, instead of interval."""
    jitter: Duration = timedelta(seconds=30)
    """Random delay added to each scheduled run, so installations spread their load. Keys with
    the same interval (or cron) and jitter run together: one run, one StackState list per kind."""
    recheck: PositiveDuration = timedelta(minutes=1)
    """While consumers switch over (or a failed run retries), check this often instead."""

    @model_validator(mode="before")
    @classmethod
    def _default_interval(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("interval") is None and data.get("cron") is None:
            return {**data, "interval": timedelta(hours=1)}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if self.interval is not None and self.cron is not None:
            raise_problems([("cron", "give either interval or cron, not both")])
        return self

    def describe(self) -> str:
        """``every 1h`` or ``cron '0 */6 * * *'``."""
        if self.cron is not None:
            return f"cron '{self.cron}'"
        assert self.interval is not None
        return f"every {format_duration(self.interval)}"


#: alert_before when neither defaults nor the key set it (capped at half of rotate_before).
DEFAULT_ALERT_BEFORE: Final = timedelta(days=7)

#: The policy fields that ``defaults:`` holds and each managed key may override.
POLICY_FIELDS: Final = (
    "validity",
    "rotate_before",
    "grace_period",
    "switch_timeout",
    "orphan_min_age",
    "schedule",
    "windows",
    "alert_before",
)


class Defaults(ConfigModel):
    """The policy every managed key inherits unless it overrides a field."""

    validity: Validity = timedelta(days=90)
    """Lifetime of each new key."""
    rotate_before: RotateBefore = timedelta(days=14)
    """Rotate when expiry is this close: a duration, or a percentage of validity ("30%")."""
    grace_period: Duration = timedelta(minutes=10)
    """After all consumers switched, wait this long before revoking the old key."""
    switch_timeout: PositiveDuration = timedelta(minutes=30)
    """Consumers not switched after this long raise switch_timeout; the old key is kept."""
    orphan_min_age: PositiveDuration = timedelta(hours=1)
    """Managed keys no target references are deleted once older than this."""
    schedule: Schedule = Field(default_factory=Schedule)
    """When to check: interval (default 1h) or cron."""
    windows: list[CronExpression] = Field(default_factory=list)
    """Maintenance windows (crontab expressions, UTC) rotations are limited to; empty: any time."""
    alert_before: Duration | None = None
    """Raise key_expiring when the key in use expires within this; must be below rotate_before.

    Default: 7d, or half of rotate_before when that is shorter."""

    @model_validator(mode="after")
    def _consistent(self) -> Defaults:
        policy = resolve_policy(self)
        problems = [(fields[0], message) for fields, message in policy_problems(policy)]
        if problems:
            raise_problems(problems)
        return self


class KeyPolicy(ConfigModel):
    """The effective policy of one managed key: defaults merged with its overrides, resolved."""

    validity: Duration
    """Lifetime of each new key."""
    rotate_before: Duration
    """Rotate when expiry is this close (a percentage already resolved against validity)."""
    rotate_before_percent: float | None = None
    """The percentage rotate_before was given as, if it was."""
    grace_period: Duration
    switch_timeout: Duration
    orphan_min_age: Duration
    schedule: Schedule
    windows: tuple[str, ...] = ()
    """Maintenance windows (crontab, UTC); empty: rotations may happen any time."""
    alert_before: Duration


def resolve_policy(defaults: Defaults, key: ManagedKey | None = None) -> KeyPolicy:
    """Merge ``key``'s overrides over ``defaults`` and resolve a percentage ``rotate_before``.

    This does not check the result (:class:`RotatorConfig` does, naming the fields).
    """
    values: dict[str, Any] = {name: getattr(defaults, name) for name in POLICY_FIELDS}
    if key is not None:
        for name in POLICY_FIELDS:
            override = getattr(key, name)
            if override is not None:
                values[name] = override
    rotate_before = values.pop("rotate_before")
    percent = None
    if isinstance(rotate_before, Percentage):
        percent = rotate_before.percent
        rotate_before = rotate_before.of(values["validity"])
    alert_before = values.pop("alert_before")
    if alert_before is None:
        half = timedelta(seconds=round(rotate_before.total_seconds() / 2))
        alert_before = min(DEFAULT_ALERT_BEFORE, half)
    return KeyPolicy(
        **{**values, "windows": tuple(values["windows"])},
        rotate_before=rotate_before,
        rotate_before_percent=percent,
        alert_before=alert_before,
    )


def policy_problems(policy: KeyPolicy) -> list[tuple[tuple[str, ...], str]]:
    """Consistency rules of one policy: each broken one with the fields it involves and why."""
    fd = format_duration
    rotate = fd(policy.rotate_before)
    if policy.rotate_before_percent is not None:
        rotate = f"{rotate} = {policy.rotate_before_percent:g}% of validity"
    problems: list[tuple[tuple[str, ...], str]] = []
    if policy.rotate_before >= policy.validity:
        problems.append(
            (
                ("rotate_before", "validity"),
                f"rotate_before ({rotate}) must be shorter than validity ({fd(policy.validity)})"
                f", or every key would be rotated at once",
            )
        )
    elif policy.rotate_before <= policy.switch_timeout + policy.grace_period:
        problems.append(
            (
                ("rotate_before", "switch_timeout", "grace_period"),
                f"rotate_before ({rotate}) must be longer than switch_timeout + grace_period "
                f"({fd(policy.switch_timeout + policy.grace_period)}), so consumers "
                f"switch before the old key expires",
            )
        )
    if policy.alert_before >= policy.rotate_before:
        problems.append(
            (
                ("alert_before", "rotate_before"),
                f"alert_before ({fd(policy.alert_before)}) must be shorter than rotate_before "
                f"({rotate}), or key_expiring would fire before every rotation",
            )
        )
    interval = policy.schedule.interval
    if interval is not None and interval >= policy.rotate_before:
        problems.append(
            (
                ("schedule", "rotate_before"),
                f"schedule.interval ({fd(interval)}) must be shorter than rotate_before "
                f"({rotate}), or a key can expire between two runs",
            )
        )
    return problems
