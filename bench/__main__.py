"""`make bench`: every benchmark, printed as one table of side-by-side ratios."""

from __future__ import annotations

import sys

from bench import chaos, imports, launch, sms

BENCHES = {"imports": imports.run, "launch": launch.run, "chaos": chaos.run, "sms": sms.run}


def main(names: list[str]) -> None:
    rows: list[tuple[str, str, str]] = []
    for name in names or list(BENCHES):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += BENCHES[name]()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>12}  note")
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main(sys.argv[1:])
