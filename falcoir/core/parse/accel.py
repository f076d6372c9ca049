"""The optional C accelerator of the text-alert parser, and the switch to the pure path.

``falcoir.core.parse._speedups`` (built from ``_speedups.c`` when a C compiler was there
at install time) builds the :class:`~falcoir.core.alert.Alert` of a plain text alert
line exactly as :func:`falcoir.core.parse.build.text_alert` does, or declines the line
(returns ``None``) and the pure-Python parser reads it. The pure-Python code is the
reference; tests compare both on the corpus and on generated lines.

``FALCOIR_PURE_PARSER=1`` in the environment (read at import) keeps the pure path, and
so does a build older than one of the sources it mirrors (:data:`MIRRORED`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from falcoir.core.alert import Alert, Connection, Container, K8s, Process
from falcoir.core.parse import normalize, pairs

TextAlert = Callable[[str, int], Alert | None]

EXPECTED_VERSION = 2
"""The ``_speedups.VERSION`` this Python code matches (a stale build is not used)."""

_SLOT_INDEX = (
    "name",
    "cmdline",
    "pid",
    "vpid",
    "ppid",
    "exepath",
    "cwd",
    "user",
    "parent",
    "cid",
    "full_id",
    "cname",
    "image",
    "image_tag",
    "ns",
    "pod",
    "pod_uid",
    "exec_command",
)


def configure(mod: ModuleType) -> TextAlert | None:
    """Hand the C module the tables it shares with the pure path; its ``text_alert``,
    or ``None`` when the module does not match this code."""
    if getattr(mod, "VERSION", None) != EXPECTED_VERSION:
        return None
    index = {name: i for i, name in enumerate(_SLOT_INDEX)}
    slots = {
        key: (index[slot], rank) for key, (slot, rank, _special) in normalize._SLOTS.items() if slot
    }
    mod.configure(
        Alert,
        Process,
        Container,
        K8s,
        Connection,
        slots,
        tuple(sorted(pairs.KNOWN_KEYS)),
        tuple(sorted(pairs.FREE_TEXT_KEYS)),
    )
    fn: TextAlert = mod.text_alert
    return fn


def _load() -> TextAlert | None:
    if os.environ.get("FALCOIR_PURE_PARSER", "") not in ("", "0"):
        return None
    try:
        from falcoir.core.parse import _speedups
    except ImportError:
        return None
    if _stale(_speedups.__file__):
        return None
    try:
        return configure(_speedups)
    except Exception:
        # e.g. the package imported a second time (reload, or its modules dropped from
        # sys.modules): the extension keeps its first configuration; the pure path serves.
        return None


MIRRORED = (
    "_speedups.c",
    "textline.py",
    "pairs.py",
    "normalize.py",
    "build.py",
    "../alert.py",
)
"""The sources a build of ``_speedups`` must not be older than, relative to this package:
its C source and the Python files whose logic it repeats (the text-line parser, the pair
splitter, the normalisation, the Alert builder) or whose records it builds field by
field (:mod:`falcoir.core.alert`). After an edit to one of them, a build from before
could give other results than the pure path. ``setup.py`` reads this tuple (a literal)
for the extension's ``depends``, so that a build after such an edit compiles anew."""


def _stale(built: str | None) -> bool:
    """In a checkout, a build older than one of its :data:`MIRRORED` sources (edited or
    pulled since) is not used: ``pip install -e .`` or ``python setup.py build_ext
    --inplace`` rebuilds it. One ``stat`` per source (tens of microseconds in all)."""
    if built is None:
        return False
    here = os.path.dirname(built)
    try:
        # Wheels carry the sources too, unpacked just before or after the module: only
        # a source newer by more than the unpacking could take is an edit.
        limit = os.stat(built).st_mtime + _UNPACK_SLACK_S
    except OSError:
        return False
    for name in MIRRORED:
        try:
            if os.stat(os.path.join(here, name)).st_mtime > limit:
                return True
        except OSError:
            continue  # not shipped next to the module (a wheel without the C source)
    return False


_UNPACK_SLACK_S = 5.0


TEXT_ALERT: TextAlert | None = _load()
"""The accelerated builder ``iter_parse`` uses, or ``None`` for the pure path. Tests may
set it to ``None`` to compare both paths in one process."""


def active() -> str:
    """``"accelerated"`` or ``"pure"``: the path ``iter_parse`` takes for text lines."""
    return "accelerated" if TEXT_ALERT is not None else "pure"
