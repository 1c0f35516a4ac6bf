"""Target adapters: where managed key values are written (one module per target type)."""
