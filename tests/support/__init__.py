"""Support modules the tests share: fixtures' helpers, the operator harness, tiny data."""
