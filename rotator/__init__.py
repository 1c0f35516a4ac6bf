"""stackstate-key-rotator: keeps StackState / SUSE Observability keys valid without an outage."""

__version__ = "0.1.0"
