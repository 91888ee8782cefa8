"""`make docs`: regenerate the README's tables (error catalogue, config routes) from the code."""

from __future__ import annotations

import re

from dev.procs import ROOT
from lib.admin.api import ROUTES
from lib.web.errors import catalogue_markdown


def routes_markdown() -> str:
    return "\n".join(
        f"| {r.method} | `/api/{r.path}` | {r.role.value if r.role else 'none'} | {r.summary} |"
        for r in ROUTES
    )


def replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(\n?<!-- {name}:end -->)", re.S)
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2).lstrip("\n"), text)


def main() -> None:
    readme = ROOT / "README.md"
    text = replace(readme.read_text(), "errors", catalogue_markdown())
    text = replace(text, "routes", routes_markdown())
    readme.write_text(text)


if __name__ == "__main__":
    main()
