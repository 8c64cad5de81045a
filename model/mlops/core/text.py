"""Quoting another program's output inside a one-line error message."""


def one_line(text: object, limit: int = 400) -> str:
    """``text`` with its whitespace collapsed, cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
