"""The orphan sweep: keys named like a managed key that no target references (I1, I3).

Split out of :mod:`rotator.engine.plan`; a pure function of the observation and ``now``.
"""

from __future__ import annotations

from datetime import datetime

from rotator.engine.listing import KeyListing
from rotator.engine.model import Action, KeyRef, ObservedKey
from rotator.engine.policy import human_delta


def sweep_actions(observed: ObservedKey, now: datetime) -> tuple[Action, ...]:
    """Orphans to delete: keys named like this managed key that no target references.

    Only when every target was read and every held value is identified by our metadata — an
    unidentified value might be one of these keys, and deleting it would cut ingestion (I1).
    Keys younger than ``orphan_min_age`` are left alone: a concurrent run may have created one
    and not pushed it yet.
    """
    spec = observed.spec
    listed = observed.keys_by_id
    if listed is None:
        return ()
    referenced: set[int] = set()
    for obs in observed.targets:
        if obs.state is None:
            return ()
        if obs.state.value is None:
            continue
        meta = obs.state.managed_metadata
        if meta is None or meta.key_id is None:
            return ()
        referenced.add(meta.key_id)
        if meta.previous_key_id is not None and not meta.previous_revoked:
            referenced.add(meta.previous_key_id)
    if spec.adopt_key_id is not None:
        referenced.add(spec.adopt_key_id)
    # Keys a Secret outside the targets still holds for its readers (a chart Secret a preset
    # migrates from, written by an older setup): deleting one would cut those readers off (I1).
    referenced |= observed.protected_ids
    actions = []
    # The run's listing is indexed by managed name once: each key looks at its own keys only.
    for key, parsed in KeyListing.of(listed).managed_by(spec.name):
        if key.id in referenced:
            continue
        age = now - parsed.created_at
        if age < spec.orphan_min_age:
            continue
        actions.append(
            Action(
                "sweep",
                KeyRef(spec.kind, key.id),
                f"delete orphan {key.name} ({human_delta(age)} old, referenced by no target)",
            )
        )
    return tuple(actions)
