"""HTTP routes: Functions route templates (ASP.NET syntax: constraints, optional and catch-all
parameters) compiled to regular expressions, ordered by ASP.NET's precedence."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dev.host.functions import FunctionInfo, binding_attr
from dev.host.settings import resolve_setting_expressions

GUID = r"\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?"
NUMBER = r"-?\d+(?:\.\d+)?"
TYPE_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[a-z]+",
    "bool": r"true|false",
    "guid": GUID,
    "decimal": NUMBER,
    "double": NUMBER,
    "float": NUMBER,
    "datetime": r"[^/]+",
}
INT_LIMITS = {"int": 2**31, "long": 2**63}
# Precedence of a segment, lower wins: as ASP.NET routing orders templates.
LITERAL, COMPLEX, CONSTRAINED, PARAMETER, CATCH_ALL = 1, 2, 3, 4, 5


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _constraint_check(name: str, arg: str | None) -> Callable[[str], bool]:
    args = [a.strip() for a in arg.split(",")] if arg is not None else []
    if name in INT_LIMITS:
        limit = INT_LIMITS[name]
        return lambda v: -limit <= int(v) < limit
    if name == "datetime":
        return _is_datetime
    if name in TYPE_PATTERNS:
        return lambda v: True  # the pattern says it all
    checks: dict[str, Callable[[str], bool]] = {
        "min": lambda v: int(v) >= int(args[0]),
        "max": lambda v: int(v) <= int(args[0]),
        "range": lambda v: int(args[0]) <= int(v) <= int(args[-1]),
        "minlength": lambda v: len(v) >= int(args[0]),
        "maxlength": lambda v: len(v) <= int(args[0]),
        "length": lambda v: int(args[0]) <= len(v) <= int(args[-1]),
        "regex": lambda v: re.search(arg or "", v, re.IGNORECASE) is not None,
    }
    if name not in checks:
        raise ValueError(f"route constraint '{name}' is not known")
    numeric = name in ("min", "max", "range")
    check = checks[name]
    return (lambda v: re.fullmatch(r"-?\d+", v) is not None and check(v)) if numeric else check


def _split_constraints(text: str) -> list[str]:
    """`id:int:range(1,5)` -> ['id', 'int', 'range(1,5)'], leaving ':' inside () alone."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


@dataclass
class RouteParam:
    name: str
    pattern: str = r"[^/]+"
    checks: list[Callable[[str], bool]] = field(default_factory=list)
    optional: bool = False
    catch_all: bool = False
    default: str | None = None

    @classmethod
    def parse(cls, spec: str) -> RouteParam:
        catch_all = spec.startswith("*")
        spec = spec.lstrip("*")
        optional = spec.endswith("?")
        name, *constraints = _split_constraints(spec.rstrip("?"))
        name, _, default = name.partition("=")
        if constraints and "=" in constraints[-1] and "(" not in constraints[-1]:
            constraints[-1], _, default = constraints[-1].partition("=")
        param = cls(name.strip(), optional=optional, catch_all=catch_all, default=default or None)
        for constraint in constraints:
            param.constrain(constraint.strip())
        return param

    def constrain(self, constraint: str) -> None:
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", constraint, re.DOTALL)
        if not match:
            raise ValueError(f"route constraint '{constraint}' cannot be read")
        name, arg = match.group(1).lower(), match.group(2)
        if name in TYPE_PATTERNS:
            self.pattern = TYPE_PATTERNS[name]
        self.checks.append(_constraint_check(name, arg))

    @property
    def rank(self) -> int:
        if self.catch_all:
            return CATCH_ALL
        return CONSTRAINED if self.checks else PARAMETER

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


@dataclass
class RouteTemplate:
    """A Functions route template compiled to one regular expression."""

    template: str
    regex: re.Pattern[str]
    params: list[RouteParam]
    precedence: tuple[int, ...]

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        params: list[RouteParam] = []
        pieces, precedence = [], []
        segments = [s for s in template.strip("/").split("/")] if template.strip("/") else []
        for index, segment in enumerate(segments):
            piece, rank = _compile_segment(segment, params, last=index == len(segments) - 1)
            pieces.append(piece)
            precedence.append(rank)
        regex = re.compile("^" + "".join(pieces) + "/?$", re.IGNORECASE | re.DOTALL)
        return cls(template, regex, params, tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        if not found:
            return None
        values: dict[str, str] = {}
        for index, param in enumerate(self.params):
            value = found.group(f"p{index}")
            if value is None or (value == "" and param.catch_all):
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not param.accepts(value):
                return None
            values[param.name] = value
        return values


def _compile_segment(segment: str, params: list[RouteParam], last: bool) -> tuple[str, int]:
    if not segment:
        raise ValueError("a route template has an empty segment")
    whole = re.fullmatch(r"\{([^{}]+)\}", segment)
    if whole:
        param = RouteParam.parse(whole.group(1))
        group = f"(?P<p{len(params)}>{'.*' if param.catch_all else f'(?:{param.pattern})'})"
        params.append(param)
        if param.catch_all and not last:
            raise ValueError("a catch-all parameter must be the last segment")
        optional = param.optional or param.catch_all or param.default is not None
        return (f"(?:/{group})?" if optional else f"/{group}"), param.rank
    pieces, has_param = [], False
    for token in re.split(r"(\{[^{}]+\})", segment):
        if token.startswith("{"):
            param = RouteParam.parse(token[1:-1])
            # Greedy, so `{name}.{ext}` splits `a.b.pdf` at the last dot, as ASP.NET does.
            pieces.append(f"(?P<p{len(params)}>(?:{param.pattern}))")
            params.append(param)
            has_param = True
        elif token:
            pieces.append(re.escape(token))
    return "/" + "".join(pieces), COMPLEX if has_param else LITERAL


@dataclass
class Route:
    fn: FunctionInfo
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def build_route(fn: FunctionInfo, route_prefix: str) -> Route:
    route = binding_attr(fn.trigger, "route")
    route = resolve_setting_expressions(fn.name if route is None else route)
    template = "/".join(p for p in (route_prefix, route.strip("/")) if p)
    methods = binding_attr(fn.trigger, "methods")
    allowed = frozenset(str(getattr(m, "value", m)).upper() for m in methods) if methods else None
    return Route(fn, RouteTemplate.compile(template), allowed)
