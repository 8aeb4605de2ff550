"""Build of the C modules; everything else about the package is in pyproject.toml.

``tollguard.media._fastpath`` is the embedded relay's packet path (docs/media.md);
``tollguard.bench._rtpgen`` the relay benchmark's traffic generator. Both are optional:
without a C compiler and Python's headers the install still succeeds, the relay's
engine moves every packet in Python (at about twice the cost per packet) and the
benchmark generates its traffic in Python (which limits what it can measure).
"""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(
    ext_modules=[
        Extension(
            "tollguard.media._fastpath",
            sources=["src/tollguard/media/_fastpath.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "tollguard.bench._rtpgen",
            sources=["src/tollguard/bench/_rtpgen.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ]
)
