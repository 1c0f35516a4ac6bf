"""The environment of the programs the rotator starts: ``command`` consumers and alert hooks.

A child gets nothing it did not ask for. The rotator's own environment holds its credentials
(``STS_SERVICE_TOKEN``, ``VAULT_TOKEN``, a webhook secret referenced as ``${...}`` in the
configuration, cloud credentials of the pod ...), and a restart script has no use for any of
them; inheriting them would hand every credential of the rotator to every program it runs, and
to their logs. So a child starts with:

- the variables a program needs to behave normally, taken from the rotator's environment when
  set: :data:`INHERITED` (``PATH``, ``HOME``, ``LANG``, ``LC_ALL``);
- the ``env:`` mapping of its configuration entry (values may use ``${VAR}``, interpolated when
  the configuration is loaded), which overrides the inherited ones;
- what the caller adds (the ``command`` consumer's ``ROTATOR_MANAGED_KEY`` and
  ``ROTATOR_FINGERPRINT`` hints).

A key value is never handed over through the environment: ``pass_key: stdin`` is the one way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

__all__ = ["INHERITED", "child_environment"]

#: Variables copied from the rotator's environment when set: the search path for a bare
#: program name, the home directory, and the locale (so tools print UTF-8 as they should).
INHERITED: Final = ("PATH", "HOME", "LANG", "LC_ALL")


def child_environment(
    configured: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a child: :data:`INHERITED` from ``environ`` (default: the process
    environment), then ``configured`` (the entry's ``env:``) over it."""
    source = os.environ if environ is None else environ
    environment = {name: source[name] for name in INHERITED if name in source}
    environment.update(configured or {})
    return environment
