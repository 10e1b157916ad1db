"""DynamoDB expressions over items in attribute-value form (``{"N": "3"}``), for the simulation's fake client.

Covers what a key-value store on DynamoDB writes: condition, filter and key-condition expressions with
comparisons, ``BETWEEN``, ``IN``, ``AND``/``OR``/``NOT``, ``attribute_exists``, ``attribute_not_exists``,
``begins_with``, ``contains`` and ``size``; update expressions with ``SET`` (``a + b``, ``a - b``,
``if_not_exists``, ``list_append``), ``REMOVE``, ``ADD`` and ``DELETE``; projections. Paths are top-level
attributes: a nested path (``a.b``, ``a[0]``) raises ``NotImplementedError`` naming the expression, so a
change in what the store sends is noticed instead of being answered wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

Item = dict[str, Any]
Value = dict[str, Any]  # one attribute value: {"S": "x"}, {"N": "1"}, ...

_TOKEN = re.compile(
    r"\s*(?:(?P<op><>|<=|>=|=|<|>|\(|\)|,|\+|-|\.|\[|\])|(?P<name>#[A-Za-z0-9_]+)"
    r"|(?P<value>:[A-Za-z0-9_]+)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}
_COMPARATORS = {"=", "<>", "<", "<=", ">", ">="}


class ExpressionError(ValueError):
    """An expression DynamoDB would refuse (a ValidationException)."""


@lru_cache(maxsize=1024)
def tokenize(text: str) -> tuple[str, ...]:
    """The tokens of an expression (cached: the same few expressions come again and again)."""
    tokens: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"cannot read expression at {text[position:]!r}")
        tokens.append(match.group(match.lastgroup or 0))
        position = match.end()
    return tuple(tokens)


class _Parser:
    def __init__(self, text: str, names: Mapping[str, str], values: Mapping[str, Value]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.position = 0
        self.names = names
        self.values = values

    # --- tokens
    def peek(self, offset: int = 0) -> str | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def peek_keyword(self) -> str | None:
        token = self.peek()
        return token.upper() if token is not None and token.upper() in _KEYWORDS else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected):
            raise ExpressionError(f"expected {expected or 'more'} in {self.text!r}, found {token!r}")
        self.position += 1
        return token

    def done(self) -> bool:
        return self.position >= len(self.tokens)

    # --- operands
    def path(self) -> str:
        token = self.take()
        if token.startswith("#"):
            if token not in self.names:
                raise ExpressionError(f"{token} is not in ExpressionAttributeNames")
            name = self.names[token]
        elif token.startswith(":") or token in "()=<>,+-.[]" or token.upper() in _KEYWORDS:
            raise ExpressionError(f"expected an attribute name in {self.text!r}, found {token!r}")
        else:
            name = token
        if self.peek() in {".", "["}:
            raise NotImplementedError(f"nested attribute paths are not simulated: {self.text!r}")
        return name

    def operand(self) -> Callable[[Item], Value | None]:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"expression ends early: {self.text!r}")
        if token.startswith(":"):
            self.take()
            if token not in self.values:
                raise ExpressionError(f"{token} is not in ExpressionAttributeValues")
            value = self.values[token]
            return lambda item: value
        if token.lower() == "size" and self.peek(1) == "(":
            self.take()
            self.take("(")
            inner = self.operand()
            self.take(")")
            return lambda item: _size(inner(item))
        name = self.path()
        return lambda item: item.get(name)

    # --- conditions
    def condition(self) -> Callable[[Item], bool]:
        left = self.conjunction()
        while self.peek_keyword() == "OR":
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda item: a(item) or b(item))(left, right)
        return left

    def conjunction(self) -> Callable[[Item], bool]:
        left = self.negation()
        while self.peek_keyword() == "AND":
            self.take()
            right = self.negation()
            left = (lambda a, b: lambda item: a(item) and b(item))(left, right)
        return left

    def negation(self) -> Callable[[Item], bool]:
        if self.peek_keyword() == "NOT":
            self.take()
            inner = self.negation()
            return lambda item: not inner(item)
        return self.predicate()

    def predicate(self) -> Callable[[Item], bool]:
        token = self.peek()
        if token == "(":
            self.take()
            inner = self.condition()
            self.take(")")
            return inner
        if token is not None and self.peek(1) == "(" and token.lower() != "size":
            return self.function()
        left = self.operand()
        keyword = self.peek_keyword()
        if keyword == "BETWEEN":
            self.take()
            low = self.operand()
            self.take("AND")
            high = self.operand()
            return lambda item: _between(left(item), low(item), high(item))
        if keyword == "IN":
            self.take()
            self.take("(")
            options = [self.operand()]
            while self.peek() == ",":
                self.take()
                options.append(self.operand())
            self.take(")")
            return lambda item: any(_compare("=", left(item), option(item)) for option in options)
        comparator = self.take()
        if comparator not in _COMPARATORS:
            raise ExpressionError(f"expected a comparison in {self.text!r}, found {comparator!r}")
        right = self.operand()
        return lambda item: _compare(comparator, left(item), right(item))

    def function(self) -> Callable[[Item], bool]:
        name = self.take().lower()
        self.take("(")
        if name in {"attribute_exists", "attribute_not_exists"}:
            path = self.path()
            self.take(")")
            if name == "attribute_exists":
                return lambda item: path in item
            return lambda item: path not in item
        if name in {"begins_with", "contains"}:
            subject = self.operand()
            self.take(",")
            operand = self.operand()
            self.take(")")
            test = _begins_with if name == "begins_with" else _contains
            return lambda item: test(subject(item), operand(item))
        raise NotImplementedError(f"function {name}() is not simulated: {self.text!r}")

    # --- updates
    def update(self) -> Callable[[Item], None]:
        actions: list[Callable[[_Snapshot], None]] = []
        while not self.done():
            clause = self.take().upper()
            if clause not in {"SET", "REMOVE", "ADD", "DELETE"}:
                raise ExpressionError(f"expected SET, REMOVE, ADD or DELETE in {self.text!r}, found {clause!r}")
            while True:
                actions.append(self.action(clause))
                if self.peek() != ",":
                    break
                self.take()

        def apply(item: Item) -> None:
            # Every right-hand side reads the item as it was before the update, as DynamoDB does.
            target = _Snapshot(item, dict(item))
            for action in actions:
                action(target)

        return apply

    def action(self, clause: str) -> Callable[[_Snapshot], None]:
        name = self.path()
        if clause == "REMOVE":
            return lambda target: target.remove(name)
        if clause == "SET":
            self.take("=")
            value = self.set_value()
            return lambda target: target.set(name, value(target.before))
        operand = self.operand()
        if clause == "ADD":
            return lambda target: target.set(name, _add(target.before.get(name), operand(target.before)))
        return lambda target: target.set_or_remove(name, _delete(target.before.get(name), operand(target.before)))

    def set_value(self) -> Callable[[Item], Value | None]:
        left = self.set_term()
        if self.peek() in {"+", "-"}:
            sign = self.take()
            right = self.set_term()
            return lambda item: _arithmetic(sign, left(item), right(item))
        return left

    def set_term(self) -> Callable[[Item], Value | None]:
        token = self.peek()
        if token is not None and token.lower() in {"if_not_exists", "list_append"} and self.peek(1) == "(":
            function = self.take().lower()
            self.take("(")
            first = self.operand()
            self.take(",")
            second = self.operand()
            self.take(")")
            if function == "if_not_exists":
                return lambda item: first(item) if first(item) is not None else second(item)
            return lambda item: {"L": [*(first(item) or {}).get("L", []), *(second(item) or {}).get("L", [])]}
        return self.operand()


class _Snapshot:
    """The item an update writes into, with the item as it was before for reading operands."""

    def __init__(self, item: Item, before: Item) -> None:
        self.item = item
        self.before = before

    def set(self, name: str, value: Value | None) -> None:
        if value is None:
            raise ExpressionError(f"the value for {name} refers to an attribute that does not exist")
        self.item[name] = value

    def set_or_remove(self, name: str, value: Value | None) -> None:
        if value is None:
            self.item.pop(name, None)
        else:
            self.item[name] = value

    def remove(self, name: str) -> None:
        self.item.pop(name, None)


def _scalar(value: Value | None) -> tuple[str, Any] | None:
    if value is None:
        return None
    (kind, raw), = value.items()
    if kind == "N":
        return kind, Decimal(raw)
    return kind, raw


def _compare(comparator: str, left: Value | None, right: Value | None) -> bool:
    a, b = _scalar(left), _scalar(right)
    if a is None or b is None:
        return comparator == "<>" and (a is None) != (b is None)
    if a[0] != b[0]:
        return comparator == "<>"
    x, y = a[1], b[1]
    if comparator == "=":
        return bool(x == y)
    if comparator == "<>":
        return bool(x != y)
    if a[0] not in {"S", "N", "B"}:
        return False
    return bool({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[comparator])


def _between(value: Value | None, low: Value | None, high: Value | None) -> bool:
    return _compare(">=", value, low) and _compare("<=", value, high)


def _begins_with(value: Value | None, prefix: Value | None) -> bool:
    a, b = _scalar(value), _scalar(prefix)
    return a is not None and b is not None and a[0] == b[0] and a[0] in {"S", "B"} and a[1].startswith(b[1])


def _contains(value: Value | None, operand: Value | None) -> bool:
    if value is None or operand is None:
        return False
    (kind, raw), = value.items()
    if kind == "S":
        return "S" in operand and operand["S"] in raw
    if kind in {"SS", "NS", "BS"}:
        return any(operand == {kind[0]: member} for member in raw)
    if kind == "L":
        return operand in raw
    return False


def _size(value: Value | None) -> Value | None:
    if value is None:
        return None
    (kind, raw), = value.items()
    return {"N": str(len(raw))}


def _arithmetic(sign: str, left: Value | None, right: Value | None) -> Value:
    if left is None or right is None or "N" not in left or "N" not in right:
        raise ExpressionError("an arithmetic operand is not a number")
    a, b = Decimal(left["N"]), Decimal(right["N"])
    return {"N": str(a + b if sign == "+" else a - b)}


def _add(current: Value | None, operand: Value | None) -> Value:
    if operand is None:
        raise ExpressionError("ADD needs a value")
    if "N" in operand:
        return {"N": str(Decimal((current or {"N": "0"})["N"]) + Decimal(operand["N"]))}
    (kind, members), = operand.items()
    existing = (current or {kind: []})[kind]
    return {kind: [*existing, *(member for member in members if member not in existing)]}


def _delete(current: Value | None, operand: Value | None) -> Value | None:
    """A set without ``operand``'s members; None (the attribute goes) when nothing is left."""
    if current is None or operand is None:
        return None
    (kind, members), = operand.items()
    left = [member for member in current[kind] if member not in members]
    return {kind: left} if left else None


def condition(
    text: str, names: Mapping[str, str] | None = None, values: Mapping[str, Value] | None = None
) -> Callable[[Item], bool]:
    """A condition (or filter, or key condition) expression as a predicate over an item."""
    parser = _Parser(text, names or {}, values or {})
    predicate = parser.condition()
    if not parser.done():
        raise ExpressionError(f"unexpected {parser.peek()!r} in {text!r}")
    return predicate


def update(
    text: str, names: Mapping[str, str] | None = None, values: Mapping[str, Value] | None = None
) -> Callable[[Item], None]:
    """An update expression as a function that changes an item in place."""
    return _Parser(text, names or {}, values or {}).update()


def projection(text: str, names: Mapping[str, str] | None = None) -> list[str]:
    """The top-level attributes a projection expression names."""
    parser = _Parser(text, names or {}, {})
    attributes = [parser.path()]
    while not parser.done():
        parser.take(",")
        attributes.append(parser.path())
    return attributes


def key_condition_names(text: str, names: Mapping[str, str] | None = None) -> set[str]:
    """The attributes a key condition mentions (to check it names the index's keys)."""
    resolved = names or {}
    return {resolved.get(token, token) for token in tokenize(text) if token.startswith("#") or (
        token[0].isalpha() and token.upper() not in _KEYWORDS and token.lower() not in {"begins_with"})}


def equality_value(
    text: str, attribute: str, names: Mapping[str, str] | None = None, values: Mapping[str, Value] | None = None
) -> Value | None:
    """The value a key condition sets ``attribute`` equal to (``pk = :pk``), or None."""
    tokens = tokenize(text)
    resolved = names or {}
    for index in range(len(tokens) - 2):
        left, operator, right = tokens[index : index + 3]
        if operator == "=" and resolved.get(left, left) == attribute and right.startswith(":"):
            return (values or {}).get(right)
        if operator == "=" and resolved.get(right, right) == attribute and left.startswith(":"):
            return (values or {}).get(left)
    return None


_FUNCTIONS = {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains", "size",
              "if_not_exists", "list_append"}


@cache
def reserved_words() -> frozenset[str]:
    """DynamoDB's reserved words (a bare attribute name may not be one), from moto's copy of the list."""
    try:
        from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords
    except ImportError:  # moto is a development dependency; without it, names are not checked
        return frozenset()
    return frozenset(word.upper() for word in ReservedKeywords.get_reserved_keywords())


def validate(texts: Iterable[str], names: Mapping[str, str] | None, values: Mapping[str, Any] | None) -> None:
    """What DynamoDB checks before evaluating: every name and value given is used, no bare reserved word."""
    tokens = [token for text in texts for token in tokenize(text)]
    for kind, given in (("Values", values), ("Names", names)):
        unused = set(given or {}) - set(tokens)
        if unused:
            raise ExpressionError(f"Value provided in ExpressionAttribute{kind} unused: {sorted(unused)}")
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        is_function = token.lower() in _FUNCTIONS and following == "("
        word = token.upper()
        if token[0].isalpha() and not is_function and word not in _KEYWORDS and word in reserved_words():
            raise ExpressionError(f"Attribute name is a reserved keyword; reserved keyword: {token}")
