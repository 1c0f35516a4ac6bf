"""Imports every command module so that each registers itself on the ``cli`` group."""

from rotator.cli import config_cmd, demo, doctor, keys, rbac, rotate, sandbox_cmd, service_cmd

__all__ = ["config_cmd", "demo", "doctor", "keys", "rbac", "rotate", "sandbox_cmd", "service_cmd"]
