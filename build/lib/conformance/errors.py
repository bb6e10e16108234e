"""Errors that speak the case file's language: file, line, case id, key, what is allowed."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CaseError(Exception):
    """A case file (or one case in it) cannot be used. Only that case fails; the others still run."""

    file: str
    line: int | None
    case_id: str | None
    key: str | None
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [where]
        if self.case_id:
            parts.append(f"case '{self.case_id}'")
        if self.key:
            parts.append(f"key '{self.key}'")
        return ": ".join(parts) + f": {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column, "case": self.case_id,
                "key": self.key, "message": self.message}


def first_line(text: str) -> str:
    """The first informative line of a (framework) message. MindSpore frames its messages in rules and
    headers ("- Framework Unexpected Exception Raised:"); those are skipped when text follows."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip(" -=*\t")]
    for line in lines:
        if not line.endswith(":"):
            return line
    return lines[0] if lines else ""


class FrameworkError(Exception):
    """A framework raised inside its own code while running a step: its behaviour, not a harness crash."""

    def __init__(self, framework: str, step: int, exc: BaseException):
        self.framework, self.step, self.exc = framework, step, exc
        super().__init__(f"{framework} raised {type(exc).__name__} at step {step}: {first_line(str(exc))}")
