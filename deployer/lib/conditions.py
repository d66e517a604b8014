"""An analysis metric's condition, as the catalog writes it: one comparison of the measured value with a
number or with the baseline, e.g. `result < 0.01` or `canary <= baseline * 1.5 + 0.001`.

Parsed with Python's own `ast` and walked here over numbers, the three names and + - * / only: the grammar
is one comparison, smaller than any expression library, and nothing in it can call, index or loop. A value
that is missing or not a number (NaN, no data) makes the condition undecided (None), never true or false:
no data is never a pass.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

NAMES = ("result", "canary", "baseline")  # result and canary are the same value: the hosts judged
_COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
MAX_LENGTH = 200


class ConditionError(ValueError):
    """The condition is not one this grammar reads; the message says how to write it."""


def condition_check(text: str) -> ast.Compare:
    """The parsed condition; ConditionError saying what is wrong."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"a condition is at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConditionError(f"cannot read {text!r}: write e.g. result < 0.01 or canary <= baseline * 1.5") from exc
    if not isinstance(tree, ast.Compare) or len(tree.ops) != 1 or type(tree.ops[0]) not in _COMPARE:
        raise ConditionError("a condition is one comparison with <, <=, > or >=, e.g. result < 0.01")
    for side in (tree.left, tree.comparators[0]):
        _walk(side)
    return tree


def uses_baseline(text: str) -> bool:
    tree = condition_check(text)
    return any(isinstance(node, ast.Name) and node.id == "baseline" for node in ast.walk(tree))


def condition_holds(text: str, values: Mapping[str, float | None]) -> bool | None:
    """Whether the condition holds for `values` (result/canary, baseline); None when a value it needs is
    missing or not a finite number (or a division by zero): undecided, not a pass."""
    tree = condition_check(text)
    try:
        left, right = _value(tree.left, values), _value(tree.comparators[0], values)
    except (_Undecided, ZeroDivisionError):
        return None
    if not (math.isfinite(left) and math.isfinite(right)):
        return None
    return _COMPARE[type(tree.ops[0])](left, right)


class _Undecided(Exception):
    pass


def _walk(node: ast.AST) -> None:
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        _walk(node.left)
        _walk(node.right)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _walk(node.operand)
    elif isinstance(node, ast.Name):
        if node.id not in NAMES:
            raise ConditionError(f"unknown name {node.id!r}: a condition uses {', '.join(NAMES)} and numbers")
    elif not (isinstance(node, ast.Constant) and type(node.value) in (int, float)):
        raise ConditionError("a condition holds numbers, result, canary, baseline and + - * / only")


def _value(node: ast.AST, values: Mapping[str, float | None]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        value = values.get("canary" if node.id == "result" else node.id)
        if value is None or not math.isfinite(value):
            raise _Undecided
        return value
    if isinstance(node, ast.UnaryOp):
        return -_value(node.operand, values)
    assert isinstance(node, ast.BinOp)
    return _ARITHMETIC[type(node.op)](_value(node.left, values), _value(node.right, values))
