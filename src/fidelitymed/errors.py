"""Exceptions. Every error a user can cause derives from :class:`FidelityMedError`.

The CLI prints these in one line and exits with status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class FidelityMedError(Exception):
    """Base class of all errors caused by input, configuration or arguments."""


class ConfigError(FidelityMedError):
    """A study configuration (``study.yaml``) or an argument is invalid."""


@dataclass(frozen=True)
class DataIssue:
    """One violation found in a data file: where it is, what was found, what was expected."""

    file: str | None
    row: int | None  # 1-based data row as a spreadsheet user counts it (header = row 1)
    column: str | None
    value: Any
    expected: str

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        location = ", ".join(where) if where else "data"
        found = "" if self.value is None else f": found {self.value!r}"
        return f"{location}{found}; expected {self.expected}"


class StudyDataError(FidelityMedError):
    """Invalid data. Carries every :class:`DataIssue` found, not only the first.

    ``total`` is the number of problems when only the first ``len(issues)`` are listed (a
    caller that stops listing after a few); the message then says so, and ``total`` keeps the
    true count.
    """

    def __init__(self, issues: list[DataIssue] | DataIssue | None = None, *, file=None, row=None,
                 column=None, value=None, expected: str = "", total: int | None = None) -> None:
        if issues is None:
            issues = [DataIssue(file, row, column, value, expected)]
        elif isinstance(issues, DataIssue):
            issues = [issues]
        self.issues: list[DataIssue] = list(issues)
        self.total: int = max(len(self.issues), int(total or 0))
        first = self.issues[0]
        self.file, self.row, self.column, self.value, self.expected = (
            first.file, first.row, first.column, first.value, first.expected)
        super().__init__(self._message())

    def _message(self) -> str:
        if self.total > len(self.issues):
            lines = [f"{self.total} problems in the data (the first {len(self.issues)} listed):"]
        elif len(self.issues) == 1:
            return str(self.issues[0])
        else:
            lines = [f"{len(self.issues)} problems in the data:"]
        lines += [f"  - {issue}" for issue in self.issues]
        return "\n".join(lines)


class ClusterError(FidelityMedError):
    """The compute backend failed: a Dask scheduler unreachable, without workers, or its workers lost."""
