"""Fixtures that play lab scenarios (owned by the lab runtime work).

- ``cryptominer`` (session): the walkthrough played once on the session ``lab``
  (namespace ``default``, Deployment ``cryptominer-demo``, the ``falco`` DaemonSet).
  Shared: do not quarantine, relabel or delete it; use ``fresh_cryptominer`` for that.
- ``fresh_cryptominer`` (function): the same in a namespace of its own
  (``fresh_namespace``), for tests that change or destroy the miner.

Both give a :class:`falcoir.lab.scenario.CryptominerScenario` (pod, container ID, host
pid, vpid, the text alert and Falco JSON) and skip when the lab cannot isolate pods
(not root on Linux): without namespaces there is no miner to find.
"""

from __future__ import annotations

from typing import Any

import pytest


def _require_isolation() -> None:
    try:
        from falcoir.lab.linux import can_isolate
    except ImportError as exc:  # pragma: no cover - the runtime is part of the package
        pytest.skip(f"the lab's Linux runtime is not available: {exc}")
    ok, why = can_isolate()
    if not ok:
        pytest.skip(f"the cryptominer scenario needs an isolating lab (root on Linux): {why}")


@pytest.fixture(scope="session")
def cryptominer(lab: Any) -> Any:
    """The walkthrough's miner and Falco's alert on it, in the session lab."""
    _require_isolation()
    from falcoir.lab.scenario import play_cryptominer

    return play_cryptominer(lab.client, lab.state_dir)


@pytest.fixture
def fresh_cryptominer(lab: Any, fresh_namespace: str) -> Any:
    """A miner of the test's own, in ``fresh_namespace`` (safe to quarantine or delete)."""
    _require_isolation()
    from falcoir.lab.scenario import play_cryptominer

    return play_cryptominer(lab.client, lab.state_dir, namespace=fresh_namespace)
