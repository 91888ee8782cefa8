"""`make bench`: every benchmark, printed as one table of side-by-side ratios."""

from __future__ import annotations

import sys

from bench import capacity, chaos, imports, launch, reports, sms, writeback

BENCHES = {
    "imports": imports.run,
    "launch": launch.run,
    "chaos": chaos.run,
    "writeback": writeback.run,
    "sms": sms.run,
    "reports": reports.run,
    "capacity": capacity.run,
}


def main(argv: list[str]) -> None:
    """`python -m bench [name [args...]] ...`: arguments after a name go to that bench
    (`python -m bench writeback 900`: a quick fault run of 900 events; `capacity --model-only`)."""
    from dev.procs import loopback_skips_proxies

    loopback_skips_proxies()  # what the benches start is on loopback
    chosen: list[tuple[str, list[str]]] = []
    for word in argv:
        if word in BENCHES or not chosen:
            chosen.append((word, []))
        else:
            chosen[-1][1].append(word)
    rows: list[tuple[str, str, str]] = []
    for name, args in chosen or [(n, []) for n in BENCHES]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += BENCHES[name](args) if args else BENCHES[name]()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>12}  note")
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main(sys.argv[1:])
