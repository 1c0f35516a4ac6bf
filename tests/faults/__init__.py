"""The fault matrix: every step of a rotation meets every fault it can meet, and the rotator
must report it right and recover with the invariants intact (``../../shared/DESIGN.md`` I1-I7,
``../../shared/CLI.md`` for the ``failure`` object and exit codes).

Run ``make faults``: it runs this directory and prints the matrix (step x fault -> reported
step/category, exit code, alert, runs to settle) with every finding and its evidence
(``python -m tests.faults.report``). Each cell appends one JSON line to ``$FAULTS_RESULTS``
(else the pytest session's tmp dir).

- ``cells.py`` — the in-process cells (StackState, Vault, Kubernetes, rollouts, time) and
  :data:`~tests.faults.cells.FINDINGS`: cells where the product departs from the contract;
  their tests are ``xfail(strict=True)`` and keep asserting the contract, so a fix shows up as
  an XPASS (then remove the entry).
- ``test_matrix.py`` runs them; ``test_file_faults.py`` runs the file cells as processes in a
  user + mount namespace (``nsrun.py``: EACCES, ENOSPC, EROFS made real for root);
  ``test_kill.py`` SIGKILLs a real process at each step boundary.
- ``test_stateful.py`` — Hypothesis interleaves time, runs, faults and crashes.
- ``harness.py`` / ``journal.py`` — the fault world, the invariant checks, and the emulators
  that journal every exchange in one global order (what I2 is judged on);
  ``test_checks.py`` shows each check catching the violation it is for.

Adding a cell: describe it in ``cells.py`` (arm, clear, expected step/category/exit); nothing
else changes. Nothing here mocks the rotator: runs go through the real CLI against the
emulators over HTTP.
"""
