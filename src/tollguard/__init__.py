"""Tollguard: a secure class-4 VoIP softswitch."""

__version__ = "0.1.0"
