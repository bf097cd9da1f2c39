"""Development-only code: the local cluster and tiny models for tests and the demo."""
