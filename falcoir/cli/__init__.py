"""The typer command line: parses arguments, calls one domain function, renders.

Each command lives in its own module with a ``register(app)`` function; modules import
only typer and falcoir's light modules at import time and everything heavy (the
``kubernetes`` client, aiohttp, rich tables) inside the command body, so that
``falcoir parse`` and ``--help`` start fast.
"""
