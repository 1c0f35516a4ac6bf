"""Fixtures shared by the integration modules: ``start_daemon`` (``rotator run`` processes)."""

from tests.integration.test_service import start_daemon

__all__ = ["start_daemon"]
