"""Emulators of the StackState, Vault and Kubernetes APIs for stackstate-key-rotator's development.

A distribution of its own (``sandbox/`` in the rotator's repository), never part of the shipped
``rotator`` package; it imports nothing from ``rotator``.
"""
