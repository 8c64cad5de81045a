"""The small subset of expr-lang (github.com/expr-lang/expr) our conditions use, evaluated in Python.

Argo Workflows (a retry's ``expression``) and Argo Rollouts (an analysis metric's conditions) evaluate expr-lang in
Go; no Go toolchain is here, so the tests translate the subset they rely on: names and calls the caller provides,
numbers, double-quoted strings, comparisons, ``!``, ``&&``, ``||``, parentheses and ``[n]`` indexing. Anything else
fails the test, so a condition never passes by being read as something it is not.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r'\s+|"[^"\\]*"|\d+(?:\.\d+)?|[A-Za-z_][\w.]*|==|!=|<=|>=|&&|\|\||[<>!()\[\]]')


def evaluate(expression: str, names: dict[str, object], functions: dict[str, object]) -> object:
    python, at = [], 0
    while at < len(expression):
        match = TOKEN.match(expression, at)
        assert match, f"expression outside the tested subset at {expression[at:]!r}: {expression}"
        token, at = match.group(), match.end()
        if token in ("&&", "||"):
            python.append(" and " if token == "&&" else " or ")
        elif token == "!":
            python.append(" not ")
        elif token[0].isalpha() or token[0] == "_":
            assert token in names or token in functions, f"unknown name {token!r} in {expression}"
            python.append(f"_[{token!r}]")
        else:
            python.append(token)
    return eval("".join(python), {"__builtins__": {}}, {"_": {**names, **functions}})  # noqa: S307
