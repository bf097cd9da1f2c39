"""Training data: loading, format detection and per-row checks."""
