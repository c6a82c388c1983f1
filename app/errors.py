"""Errors about user input files, formatted as one line: `file:line: key: reason`."""

from __future__ import annotations

from pathlib import Path


class InputFileError(ValueError):
    """A config or prompt file is wrong. The CLI prints `str(err)` and exits non-zero."""

    def __init__(
        self,
        path: Path | str,
        reason: str,
        *,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        if self.key:
            where = f"{where}: {self.key}"
        return f"{where}: {self.reason}"
