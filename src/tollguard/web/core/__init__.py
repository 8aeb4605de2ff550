"""Core app: the configuration version the switch polls, and first-login password rules."""
