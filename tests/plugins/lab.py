"""Fixtures that start one falcoir lab for the test session (owned by the lab work)."""
