"""SCRATCH probes (not committed)."""
from __future__ import annotations
import base64, json
from urllib.parse import urlencode
from datetime import UTC, datetime, timedelta
from tests.e2e.portal_client import Portal, error_code, ETAG, CSRF
from dev.browser import entra_sign_in
from lib.portal.app import PAGES
from tests.e2e.test_portal import concrete
import html as H

def tok(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

def show(label, r):
    code = None
    try:
        code = r.json().get("code")
    except Exception:
        code = error_code(r)
    print(f"{label!r:70} -> {r.status_code} {code} {r.headers.get('Content-Type')}")
    if r.status_code >= 500:
        print("   BODY", r.text[:300])

def test_probe(app):
    reader = app.session("reader")
    today = datetime.now(UTC).date()
    yest = (today - timedelta(days=1)).isoformat()
    old = "2020-01-01"
    Q = [
        {"pageSize": "9999999999"}, {"pageSize": "-1"}, {"pageSize": "1e3"}, {"pageSize": "１０"},
        {"pageSize": ""}, {"from": "２０２６-01-01"}, {"from": "2026-02-30"}, {"from": "0001-01-01", "to": "0001-01-02"},
        {"to": "0001-01-05"}, {"from": "9999-12-31"}, {"to": "9999-12-31"}, {"from": "", "to": ""},
        {"preset": ""}, {"preset": "custom"}, {"department": "Cardiología"}, {"department": "O'Brien"},
        {"department": "x" * 101}, {"department": "a\u0000b"}, {"department": " lead"}, {"department": ""},
        {"endpoint": "A" * 200}, {"endpoint": ""}, {"endpoint": "no-such-ep"},
        {"continuation": ""}, {"continuation": "x" * 5000},
        {"continuation": tok(f"v1|{old}|rpt-demo-a|20200101T000000-abcdefgh")},
        {"continuation": tok(f"v1|2026-13-45|rpt-demo-a|20200101T000000-abcdefgh")},
        {"continuation": tok(f"v2|{yest}|rpt-demo-a|20200101T000000-abcdefgh")},
        {"continuation": tok(f"v1|{yest}|rpt-demo-a|x|y")},
        {"format": "csv", "continuation": "garbage!"}, {"format": ""}, {"format": "CSV"},
        {"x" * 3000: "y"},
    ]
    for q in Q:
        for route in ("reports/visits", "reports/summary"):
            show((route, q if len(str(q)) < 60 else str(q)[:60]), reader.get(app.api(route), params=q, timeout=60))
    # repeated
    show("repeated preset", reader.get(app.api("reports/visits") + "?preset=7d&preset=bogus"))
    # thresholds via API
    admin = app.session("admin")
    g = admin.get(app.api("config/reports/thresholds"))
    etag = g.headers["ETag"]
    print("thresholds", g.status_code, g.json(), etag)
    for raw in ['{"packet_loss": NaN}', '{"packet_loss": Infinity}', '{"jitter_ms": 1e309}',
                '{"jitter_ms": -1}', '{"jitter_ms": "30"}', '{"jitter_ms": true}', '{"jitter_ms": null}',
                '{}', '[]', 'null', '{"media": []}', '{"media": ["AUDIO"]}', '{"extra": 1}',
                '{"jitter_ms": -0.0}', '{"media": ["a","b","c","d","e","f"]}']:
        r = admin.put(app.api("config/reports/thresholds"), data=raw,
                      headers={"Content-Type": "application/json", "If-Match": etag})
        show(("PUT", raw), r)
        if r.status_code == 200:
            print("   ACCEPTED", r.json()); etag = r.headers["ETag"]
    r = admin.put(app.api("config/reports/thresholds"), data="{}", headers={"Content-Type": "application/json", "If-Match": etag})
    # portal
    p = Portal(app, "admin")
    page = p.get("reports")
    print("portal reports", page.status_code, {k: v for k, v in page.headers.items() if k.lower() in ("content-security-policy", "cache-control", "x-frame-options", "referrer-policy", "x-content-type-options")})
    for q in Q:
        r = p.get("reports", params=q)
        show(("portal", q if len(str(q)) < 60 else str(q)[:60]), r)
    r = p.get("reports/csv", params={"preset": "7d"})
    print("csv headers", dict(r.headers))
    for q in Q[:20]:
        show(("portal csv", q if len(str(q)) < 60 else str(q)[:60]), p.get("reports/csv", params=q))
    page = p.get("reports")
    et = H.unescape(ETAG.search(page.text).group(1))
    base = {"round_trip_ms": "500", "packet_loss": "0.1", "jitter_ms": "30", "media": "audio"}
    for name, val in [("jitter_ms", "nan"), ("jitter_ms", "inf"), ("jitter_ms", "1e309"), ("jitter_ms", "1_000"),
                      ("jitter_ms", "٣٠"), ("jitter_ms", ""), ("jitter_ms", "true"), ("jitter_ms", "-5"),
                      ("media", ""), ("media", "аudio"), ("media", "a,b,c,d,e,f"), ("etag", ""), ("etag", "W/\"x\"")]:
        data = {**base, "etag": et, name: val}
        r = p.post("reports/thresholds", data)
        show(("portal thresholds", name, val), r)
        if r.status_code == 303:
            print("   ACCEPTED", r.headers["Location"])
            et = H.unescape(ETAG.search(p.get("reports").text).group(1))
    p.get("reports")
    show("thresholds no csrf", p.post("reports/thresholds", {**base, "etag": et}, csrf=""))
    show("thresholds same-site", p.post("reports/thresholds", {**base, "etag": et}, headers={"Sec-Fetch-Site": "same-site"}))
    show("thresholds json body", p.s.post(p.url("reports/thresholds"), json={"csrf": p.csrf}, allow_redirects=False))
    show("thresholds override", p.s.post(p.url("reports"), data={"csrf": p.csrf}, headers={"X-HTTP-Method-Override": "GET"}, allow_redirects=False))
    show("GET signout", p.get("signout"))
    show("GET thresholds", p.get("reports/thresholds"))
    show("HEAD reports", p.s.head(p.url("reports"), allow_redirects=False))
    show("PUT reports", p.s.put(p.url("reports"), allow_redirects=False))
    # headers of every GET page
    for pg in PAGES:
        if pg.method != "GET":
            continue
        r = p.get(concrete(pg.path))
        h = r.headers
        print("HDR", pg.path, r.status_code, h.get("Cache-Control"), "fa-none" if "frame-ancestors 'none'" in h.get("Content-Security-Policy", "") else h.get("Content-Security-Policy"), h.get("X-Content-Type-Options"))
    # next probes
    for nxt in ["/api/portal/../../evil", "/api/portal/..%2f..%2fevil", "/\\evil.example", "/api/portal/\\evil", "%2F%2Fevil.example", "/api/portal/./../config", "/api/portal/%2e%2e/x"]:
        q = Portal(app)
        back = q.sign_in("reader", next_path=nxt)
        print("NEXT", repr(nxt), "->", back.headers["Location"])
    # callback replay
    q = Portal(app)
    start = q.s.get(q.url("signin"), allow_redirects=False)
    done = entra_sign_in(q.s, start.headers["Location"], "reader")
    url = f"{done.target}?{urlencode(done.params)}"
    first = q.s.get(url, allow_redirects=False)
    print("callback first", first.status_code, first.headers.get("Location"))
    again = q.s.get(url, allow_redirects=False)
    show("callback replay same browser", again)
    other = Portal(app)
    show("callback replay other browser", other.s.get(url, allow_redirects=False))
    # swapped state: begin in browser A, finish in browser B
    a, b = Portal(app), Portal(app)
    start = a.s.get(a.url("signin"), allow_redirects=False)
    done = entra_sign_in(a.s, start.headers["Location"], "admin")
    show("callback swapped browser", b.s.get(f"{done.target}?{urlencode(done.params)}", allow_redirects=False))
    # wrong state
    params = {**done.params, "state": "x" * 20}
    show("callback forged state", a.s.get(f"{done.target}?{urlencode(params)}", allow_redirects=False))
