"""Errors raised for bad input data.

A :class:`CaseError` always says *where* the problem is (file or table, data row,
column) and *what* is wrong, so that the command line can print it without a
traceback and exit with status 2.
"""
from __future__ import annotations


class CaseError(ValueError):
    """Invalid case data.

    Parameters
    ----------
    message:
        What is wrong, in words a user of the data understands.
    file:
        The file (for a case folder) or table name (``feeder_lines.csv``) the
        problem was found in.
    row:
        1-based data row (the first row after the header is row 1).
    column:
        The column name.
    key:
        The identifier of the offending record (``line_id=L3``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.key = key
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}" + (f" ({self.key})" if self.key else ""))
        elif self.key:
            where.append(self.key)
        if self.column is not None:
            where.append(f"column '{self.column}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def located(self, file: str) -> "CaseError":
        """The same error, attributed to ``file`` if no file was known yet."""
        if self.file is not None:
            return self
        return CaseError(self.message, file=file, row=self.row, column=self.column, key=self.key)
