"""Telemetry: off costs nothing; on, no query string, identifier or secret reaches an exported span.

The scrubbing is shown on real spans: the requests instrumentation traces a real HTTP call (to a
loopback server on a free port) into an in-memory exporter behind our processor, in the order
the Azure Monitor distro uses (ours first, then the exporting one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from dev.procs import ROOT
from dev.stack import settings_env
from lib import telemetry
from lib.settings import load_settings
from lib.telemetry import HIDDEN, scrub_attributes, scrub_path, scrub_url

ZERO_ID = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://fhir.example.org/api/FHIR/R4/Appointment/eAbcDEF12?_format=json",
            "https://fhir.example.org/api/FHIR/R4/Appointment/{id}",
        ),
        (
            "https://ehr/r4/ec2458f2-1e24-41c8/Appointment/abcdef",
            "https://ehr/r4/{id}/Appointment/{id}",
        ),
        (
            "https://graph.microsoft.com/v1.0/users/1c1a00a9-0000/onlineMeetings/createOrGet",
            "https://graph.microsoft.com/v1.0/users/{id}/onlineMeetings/createOrGet",
        ),
        ("https://ehr/oauth2/token?code=SECRET&state=S", "https://ehr/oauth2/token"),
        ("https://user:pw@ehr:8443/a#frag", "https://ehr:8443/a"),
        (
            "https://st.table.core.windows.net/evcVisits(PartitionKey='ab12',RowKey='x')",
            "https://st.table.core.windows.net/{id}",
        ),
        (
            "https://ehr/api/epic/2018/Telehealth/ContextLinking/SetExternalConnectionStatus?ConferenceID=1",
            "https://ehr/api/epic/2018/Telehealth/ContextLinking/SetExternalConnectionStatus",
        ),
    ],
)
def test_urls_keep_only_scheme_host_and_protocol_words(url, expected):
    assert scrub_url(url) == expected


def test_a_plain_word_after_a_resource_type_is_still_an_id():
    # FHIR ids may be letters only: the position, not the look, says it is an id.
    assert scrub_path("/Patient/onlyletters") == f"/Patient/{HIDDEN}"
    assert scrub_path("/users/someone/onlineMeetings") == f"/users/{HIDDEN}/onlineMeetings"


def test_attributes_lose_queries_and_get_the_logs_redaction():
    clean = scrub_attributes(
        {
            "url.full": "https://ehr/cb?code=abc",
            "url.query": "code=abc&state=def",
            "http.target": "/api/launch/callback?code=abc",
            "note": "called +1 617 555 0100 with Bearer eyJhbGciOi.eyJzdWIi.c2ln",
            "http.response.status_code": 200,
        }
    )
    assert clean == {
        "url.full": "https://ehr/cb",
        "http.target": "/api/launch/callback",
        "note": "called [phone] with Bearer [redacted]",
        "http.response.status_code": 200,
    }


class _Ehr(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def ehr():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ehr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_an_instrumented_call_is_exported_scrubbed(ehr):
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(telemetry._scrubber())
    provider.add_span_processor(SimpleSpanProcessor(exported))
    RequestsInstrumentor().instrument(tracer_provider=provider)
    try:
        requests.get(f"{ehr}/fhir/Appointment/apt-4711?patient=Pat-0042&code=c0de", timeout=10)
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("launch") as span:
            span.set_attribute("detail", "texted +15555550123")
            span.record_exception(
                ValueError(f"{ehr}/fhir/Patient/Pat-0042 said Bearer abc.def.ghi1")
            )
    finally:
        RequestsInstrumentor().uninstrument()
    spans = exported.get_finished_spans()
    assert len(spans) == 2
    text = repr(
        [(s.name, dict(s.attributes), [dict(e.attributes) for e in s.events]) for s in spans]
    )
    for leaked in ("apt-4711", "Pat-0042", "c0de", "5555550123", "abc.def.ghi1"):
        assert leaked not in text
    call = next(s for s in spans if s.name != "launch")
    url = call.attributes.get("url.full") or call.attributes.get("http.url")
    assert url == f"{ehr}/fhir/Appointment/{HIDDEN}"


def test_without_a_connection_string_nothing_is_imported():
    code = (
        "import sys, function_app; "
        "bad = [m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, **settings_env()}
    env = {k: v for k, v in env.items() if not k.startswith("APPLICATIONINSIGHTS")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_with_a_connection_string_it_starts_the_distro_with_our_scrubber(monkeypatch):
    import azure.monitor.opentelemetry as distro

    seen = {}
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kw: seen.update(kw))
    monkeypatch.setattr(telemetry, "_started", False)
    for name in ("OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER"):
        monkeypatch.setenv(name, "otlp")  # what an operator might have set: we still win
    env = {
        **settings_env(),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={ZERO_ID}",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={ZERO_ID};Authorization=AAD",
    }
    assert telemetry.configure_telemetry(load_settings(env))
    assert seen["disable_logging"] is True  # logs keep their one, redacted, path
    assert type(seen["span_processors"][0]).__name__ == "TelemetryScrubber"
    assert type(seen["credential"]).__name__ == "ManagedIdentityCredential"
    assert seen["instrumentation_options"]["urllib3"] == {"enabled": False}
    # The distro (1.8) overwrites disable_logging / disable_metrics from these variables: they
    # are what keeps every log record from being exported a second time, beside the host's.
    assert os.environ["OTEL_LOGS_EXPORTER"] == os.environ["OTEL_METRICS_EXPORTER"] == "none"
    assert telemetry._started
    assert not telemetry.configure_telemetry(load_settings(settings_env()))


def test_the_distro_reads_its_logs_switch_from_the_environment_only(monkeypatch):
    """Why configure_telemetry sets OTEL_LOGS_EXPORTER: the argument alone does nothing."""
    from azure.monitor.opentelemetry._utils.configurations import _get_configurations

    monkeypatch.delenv("OTEL_LOGS_EXPORTER", raising=False)
    assert _get_configurations(disable_logging=True)["disable_logging"] is False
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    assert _get_configurations()["disable_logging"] is True


PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Message:
    """A queue message model's shape, as stamped() sees it."""

    def __init__(self, traceparent=None):
        self.traceparent = traceparent

    def model_copy(self, update):
        return _Message(**update)


class _Invocation:
    class trace_context:
        trace_parent, trace_state = PARENT, "vendor=1"


def test_off_the_trace_helpers_do_nothing(monkeypatch):
    monkeypatch.setattr(telemetry, "_started", False)
    with telemetry.joined(PARENT, span="process x"):
        assert telemetry.traceparent() is None
    message = _Message()
    assert telemetry.stamped(message) is message


def test_on_a_block_joins_the_parent_and_a_message_carries_it(monkeypatch):
    monkeypatch.setattr(telemetry, "_started", True)
    assert telemetry.traceparent() is None  # nothing traced yet: nothing to carry
    with telemetry.joined(*telemetry.invocation_parent(_Invocation())):
        carried = telemetry.traceparent()
        assert carried is not None and carried.split("-")[1] == PARENT.split("-")[1]
        assert telemetry.stamped(_Message()).traceparent == carried
        kept = _Message("00-" + "1" * 32 + "-" + "2" * 16 + "-01")
        assert telemetry.stamped(kept) is kept  # a job put back keeps its own trace
    assert telemetry.traceparent() is None  # the block's context is detached after it


def test_a_message_without_a_trace_continues_the_invocations(monkeypatch):
    monkeypatch.setattr(telemetry, "_started", True)
    with telemetry.continued(None, _Invocation(), "visit-events"):
        assert telemetry.traceparent().split("-")[1] == PARENT.split("-")[1]
    with telemetry.continued(None, None, "visit-events"):
        assert telemetry.traceparent() is None
    with telemetry.joined("not-a-traceparent"):  # a forged message: no crash, no trace
        assert telemetry.traceparent() is None


def test_no_credential_unless_entra_is_asked_for():
    assert telemetry.telemetry_credential(None) is None
    assert telemetry.telemetry_credential("Authorization=Key") is None


def test_the_host_keeps_query_strings_out_of_its_request_telemetry():
    import json

    insights = json.loads((ROOT / "host.json").read_text())["logging"].get(
        "applicationInsights", {}
    )
    assert not insights.get("enableQueryStringTracing", False)


def test_a_carried_trace_is_continued_in_a_span_linked_to_the_hosts_invocation():
    """With the real SDK (in its own process: a tracer provider is set once per process)."""
    code = f"""
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exported, provider = InMemorySpanExporter(), TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exported))
trace.set_tracer_provider(provider)
from lib import telemetry
telemetry._started = True
class Invocation:
    class trace_context:
        trace_parent, trace_state = "00-{"1" * 32}-{"2" * 16}-01", ""
with telemetry.continued("{PARENT}", Invocation(), "visit-events"):
    carried = telemetry.traceparent()
(span,) = exported.get_finished_spans()
print(json.dumps({{"name": span.name, "kind": span.kind.name, "carried": carried,
    "trace": format(span.context.trace_id, "032x"), "parent": format(span.parent.span_id, "016x"),
    "links": [format(link.context.trace_id, "032x") for link in span.links]}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    import json

    span = json.loads(done.stdout.strip().splitlines()[-1])
    _, trace_id, parent_id, _ = PARENT.split("-")
    assert span["name"] == "process visit-events" and span["kind"] == "CONSUMER"
    assert span["trace"] == trace_id and span["parent"] == parent_id  # the sender's trace
    assert span["links"] == ["1" * 32]  # and the host's record of this invocation
    assert span["carried"].split("-")[1] == trace_id  # what it queues next carries it on
