"""The long-running service: scheduling, leader election, probes, metrics, notification, history.

Nothing here imports :mod:`rotator.cli`; the CLI's ``service`` command starts
:class:`rotator.daemon.service.Service`.
"""
