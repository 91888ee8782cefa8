"""A reader of Bicep source for the infra checks, over the tree-sitter Bicep grammar.

There is no Bicep compiler on these machines (the CLI is a .NET binary fetched from a CDN), so the
checks parse with `tree-sitter-bicep` (PyPI): a real grammar whose tree marks every syntax error
with ERROR or MISSING nodes. On top of the tree this module reads declarations and turns literal
values into Python (str, int, bool, None, list, dict); anything that is an expression stays an
`Expr` carrying its node, so a check can tell "the literal false" from "some expression".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tree_sitter
import tree_sitter_bicep

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@functools.cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


@dataclass(frozen=True)
class Expr:
    """A value that is not a literal: a reference, a call, an interpolated string..."""

    node: tree_sitter.Node

    @property
    def kind(self) -> str:
        return self.node.type

    @property
    def text(self) -> str:
        return self.node.text.decode()

    def __repr__(self) -> str:
        return f"Expr({self.kind}: {self.text[:60]!r})"


@dataclass
class Decl:
    kind: str  # param, var, resource, module, output, func, type
    name: str
    node: tree_sitter.Node
    decorators: dict[str, list[Any]] = field(default_factory=dict)
    type: str | None = None  # a resource's type@version, a module's path, a param's type
    value: tree_sitter.Node | None = None  # a param's default, a var's / output's value, a body
    existing: bool = False
    conditional: bool = False
    loop: bool = False


_KINDS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
    "user_defined_function": "func",
    "type_declaration": "type",
}


class BicepFile:
    def __init__(self, path: Path, source: bytes | None = None) -> None:
        self.path = path
        self.source = path.read_bytes() if source is None else source
        self.tree = _parser().parse(self.source)
        self.decls = self._declarations()

    @property
    def name(self) -> str:
        return (
            str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else self.path.name
        )

    def errors(self) -> list[str]:
        """Every ERROR / MISSING node, as 'line:column: text'."""
        found: list[str] = []

        def walk(node: tree_sitter.Node) -> None:
            if node.is_error or node.is_missing:
                row, col = node.start_point
                what = "missing " + node.type if node.is_missing else node.text.decode()[:40]
                found.append(f"{self.name}:{row + 1}:{col + 1}: {what!r}")
                return
            for child in node.children:
                walk(child)

        walk(self.tree.root_node)
        return found

    def _declarations(self) -> list[Decl]:
        decls: list[Decl] = []
        pending: dict[str, list[Any]] = {}
        for node in self.tree.root_node.named_children:
            if node.type == "decorators":
                for deco in node.named_children:
                    call = deco.named_children[0]
                    if call.type == "call_expression":
                        fn = call.child_by_field_name("function").text.decode()
                        args = call.child_by_field_name("arguments").named_children
                        pending[fn] = [literal(a) for a in args]
                    else:
                        pending[call.text.decode()] = []
                continue
            kind = _KINDS.get(node.type)
            if kind is None:
                continue
            decls.append(self._declaration(kind, node, pending))
            pending = {}
        return decls

    def _declaration(self, kind: str, node: tree_sitter.Node, decorators: dict) -> Decl:
        named = node.named_children
        decl = Decl(kind, named[0].text.decode(), node, decorators)
        rest = named[1:]
        if kind in ("resource", "module"):
            decl.type = literal(rest[0])
            decl.existing = any(
                c.type == "existing" or c.text == b"existing" for c in node.children
            )
            body = rest[-1]
            if body.type == "if_statement":
                decl.conditional = True
                body = body.named_children[-1]
            elif body.type == "for_statement":
                decl.loop = True
                body = body.child_by_field_name("body") or body.named_children[-1]
            decl.value = body
        elif kind in ("param", "output"):
            decl.type = rest[0].text.decode() if rest else None
            decl.value = rest[1] if len(rest) > 1 else None
        elif kind == "var":
            decl.value = rest[-1]
        return decl

    def of(self, kind: str) -> dict[str, Decl]:
        return {d.name: d for d in self.decls if d.kind == kind}

    @property
    def params(self) -> dict[str, Decl]:
        return self.of("param")

    @property
    def variables(self) -> dict[str, Decl]:
        return self.of("var")

    @property
    def outputs(self) -> dict[str, Decl]:
        return self.of("output")

    @property
    def modules(self) -> dict[str, Decl]:
        return self.of("module")

    def resources(self, type_name: str | None = None, *, existing: bool = False) -> list[Decl]:
        """Declared resources (or `existing` ones), of one type (any API version) if given."""
        return [
            d
            for d in self.decls
            if d.kind == "resource"
            and d.existing == existing
            and (type_name is None or str(d.type).split("@")[0] == type_name)
        ]


def literal(node: tree_sitter.Node | None) -> Any:
    """The Python value of a literal node; an `Expr` for anything computed."""
    if node is None:
        return None
    kind = node.type
    if kind == "string":
        parts = node.named_children
        if all(p.type in ("string_content", "escape_sequence") for p in parts):
            return "".join(_unescape(p) for p in parts)
        return Expr(node)
    if kind == "number":
        return int(node.text)
    if kind == "boolean":
        return node.text == b"true"
    if kind == "null":
        return None
    if kind == "array":
        return [literal(c) for c in node.named_children]
    if kind == "object":
        return {
            _key(p): literal(p.named_children[-1])
            for p in node.named_children
            if p.type == "object_property"
        }
    if kind == "parenthesized_expression" and len(node.named_children) == 1:
        return literal(node.named_children[0])
    if kind == "unary_expression" and node.text.startswith(b"-"):
        inner = literal(node.named_children[-1])
        return -inner if isinstance(inner, int) else Expr(node)
    return Expr(node)


def _unescape(part: tree_sitter.Node) -> str:
    text = part.text.decode()
    if part.type == "escape_sequence":
        return {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}.get(
            text, text
        )
    return text


def _key(prop: tree_sitter.Node) -> str:
    key = prop.named_children[0]
    value = literal(key)
    return value if isinstance(value, str) else key.text.decode()


def prop(value: Any, path: str) -> Any:
    """`prop(body, 'properties.siteConfig.ftpsState')`: a nested member of a literal object."""
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def body(decl: Decl) -> dict:
    value = literal(decl.value)
    return value if isinstance(value, dict) else {}


def is_param_ref(value: Any, file: BicepFile) -> bool:
    """True when the value is exactly one of the file's parameters."""
    return isinstance(value, Expr) and value.kind == "identifier" and value.text in file.params


def calls(node: tree_sitter.Node, *, prefix: str = "") -> set[str]:
    """Names of the functions called anywhere under `node` (e.g. listKeys)."""
    found: set[str] = set()

    def walk(n: tree_sitter.Node) -> None:
        if n.type == "call_expression":
            fn = n.child_by_field_name("function")
            name = fn.text.decode().split(".")[-1]
            if name.startswith(prefix):
                found.add(name)
        for child in n.children:
            walk(child)

    walk(node)
    return found


def identifiers(node: tree_sitter.Node) -> set[str]:
    """Names referenced under `node` (object keys such as `name:` are not references)."""
    found: set[str] = set()

    def walk(n: tree_sitter.Node) -> None:
        if n.type == "identifier":
            found.add(n.text.decode())
        children = n.children
        if n.type == "object_property" and children:
            children = children[1:]
        for child in children:
            walk(child)

    walk(node)
    return found


def infra_files(root: Path = INFRA) -> list[BicepFile]:
    return [BicepFile(p) for p in sorted(root.rglob("*.bicep"))]
