"""The optional C accelerator of the text-alert parser (everything else is in
pyproject.toml). ``optional=True``: without a C compiler the install still succeeds and
falcoir uses its pure-Python parser, the reference implementation."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "falcoir.core.parse._speedups",
            sources=["falcoir/core/parse/_speedups.c"],
            optional=True,
        )
    ]
)
