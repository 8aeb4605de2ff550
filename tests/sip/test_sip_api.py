"""The tollguard.sip façade exports exactly its public names."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import tollguard.sip as sip

OWN_MODULES = ("errors", "status", "uri", "headers", "message", "parser")


def test_all_matches_the_public_namespace() -> None:
    public = {
        name
        for name, value in vars(sip).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(sip.__all__) == public
    assert len(sip.__all__) == len(set(sip.__all__))


def test_every_exported_name_resolves() -> None:
    for name in sip.__all__:
        assert getattr(sip, name) is not None


def test_module_all_lists_are_re_exported() -> None:
    for module_name in OWN_MODULES:
        module = importlib.import_module(f"tollguard.sip.{module_name}")
        for name in getattr(module, "__all__", ()):
            assert name in sip.__all__, f"{module_name}.{name} is not re-exported"


def test_no_io_or_clock_imports() -> None:
    forbidden = {"asyncio", "socket", "django", "time", "datetime", "select", "selectors", "ssl"}
    package = Path(sip.__file__).parent
    for module_name in OWN_MODULES:
        tree = ast.parse((package / f"{module_name}.py").read_text(encoding="utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & forbidden, f"{module_name} imports {imported & forbidden}"


def test_error_tree() -> None:
    assert issubclass(sip.LocalProtocolError, sip.SipError)
    assert issubclass(sip.RemoteProtocolError, sip.SipError)
    assert issubclass(sip.MessageDropped, sip.SipError)
    assert not issubclass(sip.MessageDropped, sip.RemoteProtocolError)
    error = sip.RemoteProtocolError("bad")
    assert (error.status_code, error.headers, str(error)) == (400, None, "bad")
    assert sip.LocalProtocolError("x").status_hint == 400
