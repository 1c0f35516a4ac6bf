"""Run every benchmark and print its figures."""

from __future__ import annotations

import sys

from bench import engine_cycle, stackstate_client
from rotator.logs import configure_logging


def main() -> int:
    """Run the benchmarks in turn."""
    configure_logging(level="warning", fmt="console")
    for module in (stackstate_client, engine_cycle):
        print(f"== {module.__name__}")
        module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
