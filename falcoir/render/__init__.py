"""Renderers: machine output (JSON, JSONL, YAML) and human output (rich, tabulate).

Machine output goes to stdout through plain writes (never rich's ``print``, which wraps,
crops and interprets markup); human output, progress and warnings go to stderr.
"""
