"""The errors of ``tollguard load``; each carries every problem found, one line each.

Every line about an entry of the plan file starts with the file and the line of that
entry (or of its field, when the problem is about one), as compilers and ``grep -n``
write them, then the entry's path: ``plan.yaml:42: dids[3] '4420'.forward: ...``. A
line of a CSV rate file is named the same way, by that file: ``rates.csv:17: ...``.
:class:`Problems` collects them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tollguard.web.errors import WebError

__all__ = ["PlanApplyError", "PlanFileError", "Problems", "ProvisioningError"]

# A path is cut back to a shorter one that has a line only before these characters:
# ``customers[2] 'acme'.accounts[0].username`` -> ``customers[2] 'acme'.accounts[0]``.
_BOUNDARIES = frozenset(".[ ")


class ProvisioningError(WebError):
    """A plan file that could not be loaded; nothing was changed.

    ``errors`` holds one line per problem: ``file:line: path: problem``, or
    ``path: problem`` when the problem has no line (the file as a whole, a prune).
    """

    def __init__(self, path: Path, errors: Iterable[str]) -> None:
        self.path = path
        self.errors = tuple(errors)
        super().__init__(f"{path}: {len(self.errors)} error(s)\n" + "\n".join(self.errors))


class PlanFileError(ProvisioningError):
    """The file is unreadable, not YAML, or fails validation."""


class PlanApplyError(ProvisioningError):
    """The database refused a change that validation let through (a model's own
    rule, the DID table's, a concurrent edit)."""


class Problems:
    """The problems found in one plan file, each told with the line it is about.

    The file's reader :meth:`mark`\\ s the line of every entry and field as it reads
    them, under the path errors name them by; :meth:`add` then finds the line of a
    path, or of the nearest enclosing one (a required field that is missing is
    reported at its entry's line).
    """

    def __init__(self, file: str) -> None:
        self.file = file  # as the lines name it: the plan file's name
        self.messages: list[str] = []
        self._lines: dict[str, int] = {}

    def mark(self, where: str, line: int) -> None:
        """``where`` (a path) starts on ``line`` (1-based); the first mark stays."""
        self._lines.setdefault(where, line)

    def line_of(self, where: str) -> int | None:
        """The line of ``where``, else of the longest enclosing path that has one."""
        line = self._lines.get(where)
        if line is not None:
            return line
        for end in range(len(where) - 1, 0, -1):
            if where[end] in _BOUNDARIES and (line := self._lines.get(where[:end])):
                return line
        return None

    def at(self, where: str, line: int | None = None) -> str:
        """``where`` preceded by its file and line (``line`` when given), when known."""
        line = line if line is not None else self.line_of(where)
        return f"{self.file}:{line}: {where}" if line is not None else where

    def add(self, where: str, message: str, *, line: int | None = None) -> None:
        """One problem of the entry or field at ``where``."""
        self.messages.append(f"{self.at(where, line)}: {message}")

    def add_in(self, file: str, line: int, where: str, message: str) -> None:
        """One problem on ``line`` of another ``file`` (a CSV file the plan names)."""
        self.messages.append(f"{file}:{line}: {where}: {message}")

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[str]:
        return iter(self.messages)
