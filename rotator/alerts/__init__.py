"""Alert hooks: where the rotator tells a human (or an incident tool) that it needs attention.

- :mod:`rotator.alerts.event` — :class:`~rotator.alerts.event.AlertEvent`, the events;
  :class:`~rotator.alerts.event.Alert`, the one alert shape, and its documented JSON document;
- :mod:`rotator.alerts.base` — the :class:`~rotator.alerts.base.AlertHook` Protocol every hook
  satisfies and :class:`~rotator.alerts.base.AlertDeliveryError`;
- one module per hook type: :mod:`~rotator.alerts.webhook`, :mod:`~rotator.alerts.slack`,
  :mod:`~rotator.alerts.pagerduty`, :mod:`~rotator.alerts.alertmanager`,
  :mod:`~rotator.alerts.command` (they never import each other; the HTTP ones share the POST
  of :mod:`rotator.alerts._http`);
- :mod:`rotator.alerts.dispatch` — :class:`~rotator.alerts.dispatch.Alerter` (event filter,
  deduplication, retries; a failing hook never breaks a run). The hooks are built from the
  ``alerts:`` configuration by :func:`rotator.wiring.build_hooks`: nothing here reads it.
"""
