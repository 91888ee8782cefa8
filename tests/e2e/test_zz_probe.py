"""SCRATCH probes (not committed)."""
from __future__ import annotations
import csv, io
from tests.e2e.portal_client import Portal, error_code
from tests.e2e.reports_seed import report_range, seed_and_wait

def show(label, r):
    try:
        code = r.json().get("code")
    except Exception:
        code = error_code(r)
    print(f"{label!r:70} -> {r.status_code} {code} {r.headers.get('Content-Type')}")
    if r.status_code >= 500:
        print("   BODY", r.text[:400])

def test_probe(app):
    seed_and_wait(app, "rpt-probe", 2, 2)
    q = {**report_range("rpt-probe", 2), "preset": "custom"}
    for kind in ("reader", "approver", "admin"):
        p = Portal(app, kind)
        rows = list(csv.DictReader(io.StringIO(p.get("reports/csv", params=q).content.decode("utf-8-sig"))))
        print("portal csv", kind, len(rows), sorted({bool(r["appointment_reference"]) for r in rows}))
        j = app.session(kind).get(app.api("reports/visits"), params={k: v for k, v in q.items() if k != "preset"}).json()
        print("api json", kind, len(j["items"]), sorted({bool(v["appointment_reference"]) for v in j["items"]}))
        c = app.session(kind).get(app.api("reports/visits"), params={**{k: v for k, v in q.items() if k != "preset"}, "format": "csv"})
        rows = list(csv.DictReader(io.StringIO(c.content.decode("utf-8-sig"))))
        print("api csv", kind, len(rows), sorted({bool(r["appointment_reference"]) for r in rows}))
    p = Portal(app, "admin")
    p.get("reports")
    show("csrf non-ascii", p.post("reports/thresholds", {"etag": "x"}, csrf="é"))
    show("csrf non-ascii signout", p.post("signout", csrf="\u0663"))
    show("csrf huge", p.post("reports/thresholds", {"etag": "x"}, csrf="a" * 60000))
    show("form non-ascii raw", p.s.post(p.url("reports/thresholds"), data="csrf=\xff".encode("latin-1"), headers={"Content-Type": "application/x-www-form-urlencoded"}, allow_redirects=False))
    for raw in ("department=%FF", "department=%ED%A0%80", "department=%C0%AF", "endpoint=%FF", "from=%FF", "continuation=%FF", "preset=%00"):
        show(("api", raw), app.session("reader").get(app.api("reports/visits") + "?" + raw))
        show(("portal", raw), p.s.get(p.url("reports") + "?" + raw, allow_redirects=False))
        show(("portal csv", raw), p.s.get(p.url("reports/csv") + "?" + raw, allow_redirects=False))
    r = app.session("reader").get(app.api("reports/visits"), params={"pageSize": "0"}, headers={"X-Request-Id": "<script>x</script>" + "a" * 5000})
    print("reqid", r.status_code, r.json().get("requestId", "")[:40], len(r.json().get("requestId", "")), {k: v[:40] for k, v in r.headers.items()})
    r = p.s.get(p.url("reports"), params={"from": "x"}, headers={"X-Request-Id": "<script>x</script>"}, allow_redirects=False)
    print("reqid page", r.status_code, "<script>x" in r.text)
    r = p.s.get(p.url("endpoints/no-such-endpoint"), headers={"X-Request-Id": "<script>x</script>"}, allow_redirects=False)
    print("reqid error page", r.status_code, "<script>x" in r.text, "&lt;script&gt;x" in r.text)
    # cookie tricks
    a = Portal(app)
    a.s.headers["Cookie"] = "__Host-evc_portal=" + "A" * 8000
    show("huge cookie", a.s.get(a.url("reports"), allow_redirects=False))
    b = Portal(app)
    b.s.headers["Cookie"] = '__Host-evc_portal="\\x"; ;;=='
    show("odd cookie", b.s.get(b.url("reports"), allow_redirects=False))
    # two cookies with the same name: attacker's first?
    c = Portal(app, "reader")
    val = c.s.cookies.get("__Host-evc_portal")
    d = Portal(app)
    d.s.headers["Cookie"] = f"__Host-evc_portal=junk; __Host-evc_portal={val}"
    show("dup cookie junk first", d.s.get(d.url("reports"), allow_redirects=False))
