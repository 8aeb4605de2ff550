"""Build of the one C module; everything else about the package is in pyproject.toml.

``tollguard.media._fastpath`` is the embedded relay's packet path (docs/media.md). It
is optional: without a C compiler and Python's headers the install still succeeds and
the relay's engine moves every packet in Python, at about twice the cost per packet.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tollguard.media._fastpath",
            sources=["src/tollguard/media/_fastpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
            optional=True,
        )
    ]
)
