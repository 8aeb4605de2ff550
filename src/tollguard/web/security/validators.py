"""Password validators beyond Django's (NIST SP 800-63B section 3.1.1.2)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

DEFAULT_MAX_LENGTH = 128


class MaximumLengthValidator:
    """Refuse passwords longer than ``max_length`` characters.

    Passphrases of at least 64 characters must be accepted; the upper bound only stops
    megabyte "passwords" from turning each sign-in into an expensive Argon2 run.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if max_length < 64:
            raise ValueError("max_length must accept passphrases of at least 64 characters")
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                "This password is too long: at most %(max_length)d characters.",
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self) -> str:
        return f"Your password can be up to {self.max_length} characters long."
