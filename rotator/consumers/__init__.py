"""Consumer adapters: what reads a managed key and must switch over (one module per type)."""
