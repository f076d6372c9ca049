"""Fixtures that play lab scenarios (owned by the lab runtime work)."""
