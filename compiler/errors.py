"""Spec errors: one exception type, printed as ``file:line:col: message``, the line and a caret.

Every mistake a spec can make — a syntax error, an undefined name, a bad default — is raised as
a :class:`SpecError` that carries the source span, so the command line can print it the way
compilers do, never as a Python traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of spec text; lines and columns are 1-based, ``end_column`` is exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, line: int, column: int) -> "Span":
        return cls(line, column, line, column + 1)


class SpecError(ValueError):
    """A mistake in a spec, located at ``span`` of ``source`` (the text of ``filename``)."""

    def __init__(self, message: str, span: Span | None = None, *, hint: str | None = None,
                 filename: str = "<spec>", source: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.filename = filename
        self.source = source

    def located(self, filename: str, source: str) -> "SpecError":
        """This error with its file attached (stages below the parser do not know the file)."""
        if self.source is None:
            self.filename, self.source = filename, source
        return self

    def __str__(self) -> str:
        if self.span is None:
            text = f"{self.filename}: {self.message}"
        else:
            text = f"{self.filename}:{self.span.line}:{self.span.column}: {self.message}"
            line = _source_line(self.source, self.span.line)
            if line is not None:
                width = (self.span.end_column - self.span.column
                         if self.span.end_line == self.span.line else len(line) - self.span.column + 1)
                text += f"\n    {line}\n    {' ' * (self.span.column - 1)}{'^' * max(1, width)}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class SpecErrors(SpecError):
    """Several independent spec errors found in one pass, reported together."""

    def __init__(self, errors: list[SpecError]):
        super().__init__(errors[0].message, errors[0].span)
        self.errors = errors

    def located(self, filename: str, source: str) -> "SpecErrors":
        for error in self.errors:
            error.located(filename, source)
        return self

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def _source_line(source: str | None, line: int) -> str | None:
    if source is None:
        return None
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    return lines[line - 1].expandtabs(1)
