"""Unit tests of the rotation engine's pure decision code (naming, policy, planning)."""
