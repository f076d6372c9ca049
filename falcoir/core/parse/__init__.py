"""Parsing Falco alerts in every shape: text lines of every Falco version and wrapper,
Falco JSON (one a line or pretty-printed), and Falcosidekick payloads.

Public API (other packages code against exactly this):

- :func:`parse_text` -> :class:`ParseReport` (``alerts``, ``skipped``, ``problems``)
- :func:`iter_parse` for streams: yields :class:`~falcoir.core.alert.Alert`,
  :class:`ParseProblem` or :class:`Skipped` as soon as each is complete
- :func:`load_rules` -> :class:`RuleSet`, to name the rule of text alerts

Plain text alert lines are read by an optional C accelerator when it was built at
install time (:mod:`falcoir.core.parse.accel`); it gives exactly what the pure-Python
parser gives, which stays the reference. ``FALCOIR_PURE_PARSER=1`` turns it off.
"""

from __future__ import annotations

from falcoir.core.parse.model import ParseProblem, ParseReport, Skipped
from falcoir.core.parse.rules import Rule, RuleSet, load_rules
from falcoir.core.parse.stream import iter_parse, parse_text

__all__ = [
    "ParseProblem",
    "ParseReport",
    "Rule",
    "RuleSet",
    "Skipped",
    "iter_parse",
    "load_rules",
    "parse_text",
]
