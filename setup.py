"""The optional C accelerator of the text-alert parser (everything else is in
pyproject.toml). ``optional=True``: without a C compiler the install still succeeds and
falcoir uses its pure-Python parser, the reference implementation.

``depends``: the Python sources the C code mirrors (``accel.MIRRORED``, read here without
importing falcoir): after an edit to one of them ``build_ext`` compiles anew instead of
keeping a build that ``accel`` would then refuse as stale."""

import ast
import posixpath
from pathlib import Path

from setuptools import Extension, setup

PARSE = "falcoir/core/parse"


def mirrored() -> list[str]:
    """``falcoir.core.parse.accel.MIRRORED`` as paths from the project root."""
    accel = Path(__file__).resolve().parent / PARSE / "accel.py"
    for node in ast.parse(accel.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "MIRRORED"
        ):
            names = ast.literal_eval(node.value)
            return [posixpath.normpath(posixpath.join(PARSE, name)) for name in names]
    raise RuntimeError(f"{accel}: no MIRRORED tuple")


if __name__ == "__main__":
    setup(
        ext_modules=[
            Extension(
                "falcoir.core.parse._speedups",
                sources=[f"{PARSE}/_speedups.c"],
                depends=mirrored(),
                optional=True,
            )
        ]
    )
