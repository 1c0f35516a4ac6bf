"""Hypothesis profiles: ``dev`` on a workstation, ``ci`` when ``CI=true``.

``HYPOTHESIS_PROFILE`` picks one explicitly (e.g. ``HYPOTHESIS_PROFILE=ci`` to reproduce a CI
run locally). The profile is loaded when this plugin is imported, before any test runs.

- ``dev`` — Hypothesis' defaults (100 examples, 200 ms deadline), failing examples printed
  with a reproduction blob; stateful tests run :data:`STATEFUL` ``dev`` sizes.
- ``ci`` — fewer examples and no deadline (two shared cores make timings noisy), derandomized
  so a CI failure reproduces from its log; stateful tests run the ``ci`` sizes, which keep
  ``tests/faults/test_stateful.py`` within about a minute on two cores.

A test's own ``@settings`` still wins over the profile for the fields it sets.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, settings

#: Examples and steps of each stateful test, per profile.
STATEFUL: Final[dict[str, dict[str, int]]] = {
    "dev": {"max_examples": 30, "stateful_step_count": 25},
    "ci": {"max_examples": 20, "stateful_step_count": 20},
}

settings.register_profile("dev", print_blob=True)
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def profile_name() -> str:
    """``$HYPOTHESIS_PROFILE``, else ``ci`` when ``$CI`` is true, else ``dev``."""
    chosen = os.environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    ci = os.environ.get("CI", "").strip().lower()
    return "ci" if ci in ("1", "true", "yes") else "dev"


def stateful_settings() -> settings:
    """Settings of a stateful test under the loaded profile: its sizes, no deadline (a step
    is a whole rotator run)."""
    sizes = STATEFUL.get(profile_name(), STATEFUL["dev"])
    return settings(
        settings.default,
        deadline=None,
        max_examples=sizes["max_examples"],
        stateful_step_count=sizes["stateful_step_count"],
    )


settings.load_profile(profile_name())
