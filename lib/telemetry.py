"""Traces to Application Insights (OpenTelemetry), only when a connection string is set.

Off (no APPLICATIONINSIGHTS_CONNECTION_STRING, as locally and in tests) nothing of OpenTelemetry
or the Azure Monitor distro is imported: `import function_app` costs the same as before.

On, the Azure Monitor distro traces our outbound calls (requests: EHRs, Microsoft Graph, Entra
ID; the Azure SDKs: storage, Communication Services). Logs keep their one path (the Functions
host, after lib/logs.py's redaction), so the distro's own log handler stays off. Every span is
scrubbed before export (`TelemetryScrubber`):
- URLs keep scheme, host and the protocol words of their path; query strings, fragments and
  anything else (FHIR ids, object ids, table keys) become `{id}`: an allow-list, so an
  identifier in a path we never thought of is hidden too;
- every other string attribute and exception event has its URLs scrubbed the same way and goes
  through lib/logs.redact_text, the same redaction as the logs.
The host's own request telemetry already leaves query strings out (its default), so launch
codes and states reach Application Insights from neither side.

One trace per journey (`joined`, `traceparent`): each invocation continues the trace the host
gives it (`context.trace_context`: the HTTP request's own, which honours an incoming W3C
`traceparent`), so our calls nest under the host's request in Application Insights. Storage
queues carry no headers, so a queue message carries its sender's `traceparent` in its body
(visit events, write-back jobs, Graph tasks); the function that takes it continues that trace
with a span of its own (`process <queue>`), as the Functions host does for Service Bus with a
message's Diagnostic-Id. A launch, its Graph and EHR calls, the visit events it causes and their
EHR write-back are then one transaction. Off, both are no-ops that import nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lib.logs import redact_text

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    from lib.settings import Settings

HIDDEN = "{id}"
# W3C trace context, version 00: what a queue message may carry (nothing else: never a URL).
TRACEPARENT = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
_started = False  # configure_telemetry ran and exports: only then are trace contexts handled

# A path segment we keep: a word (no digits), or one of the versioned protocol words we call.
_WORD = re.compile(
    r"^(?:[A-Za-z][A-Za-z_$.-]{0,39}|v\d+(?:\.\d+)?|oauth2|smart-v1|R4|r4|DSTU2|STU3|20\d\d)$"
)
# A FHIR resource type (Appointment, Patient, ...): the segment after it is an id.
_RESOURCE_TYPE = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)*$")
_NOT_RESOURCE_TYPES = {"Telehealth", "ContextLinking"}
# Collections whose next segment is an id (Graph users and meetings, Oracle tenants, ...).
_COLLECTIONS = {
    "users", "onlineMeetings", "tenants", "subscriptions", "phoneNumbers", "callRecords",
    "attendanceReports", "attendanceRecords", "applications", "servicePrincipals",
}  # fmt: skip
# Operations that follow a collection where an id would (…/onlineMeetings/createOrGet).
_ACTIONS = {"createOrGet", "getVirtualAppointmentJoinWebUrl", "delta", "$count"}
_URL_IN_TEXT = re.compile(r"\bhttps?://[^\s'\"<>)]+")
# Attributes that hold a whole URL, a path (with or without a query), or only a query.
_URL_KEYS = {"url.full", "http.url", "az.url"}
_PATH_KEYS = {"url.path", "http.target"}
_DROP_KEYS = {"url.query", "url.fragment"}


def scrub_path(path: str) -> str:
    kept: list[str] = []
    previous = ""
    for segment in path.split("?", 1)[0].split("#", 1)[0].split("/"):
        follows_id = previous in _COLLECTIONS or (
            _RESOURCE_TYPE.match(previous) is not None and previous not in _NOT_RESOURCE_TYPES
        )
        if segment and segment not in _ACTIONS and (follows_id or not _WORD.match(segment)):
            kept.append(HIDDEN)
        else:
            kept.append(segment)
        previous = segment
    return "/".join(kept)


def scrub_url(url: str) -> str:
    """scheme://host[:port] + the path's protocol words; no query, no fragment, no user info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return HIDDEN
    if not parts.scheme or not host:
        return scrub_path(url)
    return f"{parts.scheme}://{host}{port}{scrub_path(parts.path)}"


def scrub_text(text: str) -> str:
    """Free text (an exception message, a status): its URLs scrubbed, then the logs' redaction."""
    return redact_text(_URL_IN_TEXT.sub(lambda m: scrub_url(m.group(0)), text))


def scrub_attributes(attributes: Any) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in dict(attributes or {}).items():
        if key in _DROP_KEYS:
            continue
        if isinstance(value, str):
            if key in _URL_KEYS:
                value = scrub_url(value)
            elif key in _PATH_KEYS:
                value = scrub_path(value)
            else:
                value = scrub_text(value)
        elif isinstance(value, list | tuple):
            value = [scrub_text(v) if isinstance(v, str) else v for v in value]
        clean[key] = value
    return clean


def _scrubber() -> SpanProcessor:
    from opentelemetry.sdk.trace import Event, SpanProcessor
    from opentelemetry.sdk.util import BoundedList

    class TelemetryScrubber(SpanProcessor):
        """Rewrites each finished span before the exporting processors (added after it) see it."""

        def on_end(self, span: ReadableSpan) -> None:
            # A finished span is read-only through the API: replace its attribute and event
            # containers (the SDK's own fields) with scrubbed copies.
            span._attributes = scrub_attributes(span.attributes)  # type: ignore[attr-defined]
            events = [
                Event(e.name, scrub_attributes(e.attributes), e.timestamp) for e in span.events
            ]
            span._events = BoundedList.from_seq(len(events) or 1, events)  # type: ignore[attr-defined]
            if span.status.description:
                span._status = type(span.status)(  # type: ignore[attr-defined]
                    span.status.status_code, scrub_text(span.status.description)
                )

    return TelemetryScrubber()


def telemetry_credential(authentication: str | None) -> Any:
    """The token credential APPLICATIONINSIGHTS_AUTHENTICATION_STRING asks for, or None.

    `ClientId=<id>;Authorization=AAD` (what infra/ sets): the user-assigned identity. With local
    authentication off on the Application Insights resource, nothing is accepted without it.
    """
    fields = dict(part.split("=", 1) for part in (authentication or "").split(";") if "=" in part)
    if fields.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = fields.get("ClientId")
    return (
        ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    )


def configure_telemetry(settings: Settings) -> bool:
    """Start tracing to Application Insights when configured; True when it was started."""
    if not settings.appinsights_connection_string:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    global _started
    # The distro (1.8) takes its logs and metrics switches from the environment only: its
    # `disable_logging` / `disable_metrics` arguments are overwritten by these variables'
    # defaults. Unset, every log record went to Application Insights a second time, beside the
    # host's, redacted only when our handler happened to run first. Logs keep one path.
    os.environ["OTEL_LOGS_EXPORTER"] = "none"
    os.environ["OTEL_METRICS_EXPORTER"] = "none"
    configure_azure_monitor(
        connection_string=settings.appinsights_connection_string,
        credential=telemetry_credential(settings.appinsights_authentication_string),
        span_processors=[_scrubber()],
        disable_logging=True,  # as the variables above say: logs go through the host, redacted
        disable_metrics=True,  # the host reports invocations and durations
        enable_performance_counters=False,  # metrics, which are off
        enable_live_metrics=False,
        instrumentation_options={
            "azure_sdk": {"enabled": True},
            "requests": {"enabled": True},
            **{name: {"enabled": False} for name in _UNUSED_INSTRUMENTATIONS},
        },
    )
    _started = True
    return True


def stamped(message: Any) -> Any:
    """A queue message (a model with a `traceparent` field) carrying the current trace, unless
    it carries one already (a job put back on its queue stays in its trace)."""
    if getattr(message, "traceparent", None) is not None:
        return message
    found = traceparent()
    return message.model_copy(update={"traceparent": found}) if found else message


def traceparent() -> str | None:
    """The current trace context as a W3C `traceparent`, for a message to carry; None when
    telemetry is off or nothing is being traced."""
    if not _started:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def joined(
    parent: str | None,
    tracestate: str | None = None,
    *,
    span: str | None = None,
    linked: str | None = None,
) -> Iterator[None]:
    """Run the block inside the trace `parent` (a W3C traceparent), in a span named `span` when
    given (a queue message's processing: a request of its own in Application Insights), linked
    to the trace `linked` (the host's own record of this invocation).

    Off, or without a parent, it does nothing. A malformed parent starts a fresh trace."""
    if not _started or not parent:
        yield
        return
    from opentelemetry import context, trace
    from opentelemetry.propagate import extract

    carrier = {"traceparent": parent, **({"tracestate": tracestate} if tracestate else {})}
    token = context.attach(extract(carrier))
    try:
        if span is None:
            yield
        else:
            other = trace.get_current_span(extract({"traceparent": linked or ""}))
            links = (
                [trace.Link(other.get_span_context())] if other.get_span_context().is_valid else []
            )
            tracer = trace.get_tracer("connector")
            with tracer.start_as_current_span(span, kind=trace.SpanKind.CONSUMER, links=links):
                yield
    finally:
        context.detach(token)


def continued(carried: str | None, context: Any, queue: str) -> contextlib.AbstractContextManager:
    """A queue message's processing: in its sender's trace, as a span of its own linked to the
    host's trace of this invocation, when the message carries one; else in the host's trace."""
    invocation, state = invocation_parent(context)
    if carried:
        return joined(carried, span=f"process {queue}", linked=invocation)
    return joined(invocation, state)


def invocation_parent(context: Any) -> tuple[str | None, str | None]:
    """The trace the host gave this invocation: (traceparent, tracestate), or Nones."""
    found = getattr(context, "trace_context", None) if context is not None else None
    if found is None:
        return None, None
    return getattr(found, "trace_parent", None) or None, getattr(found, "trace_state", None)


# Frameworks the distro would instrument if installed; none of them is ours.
_UNUSED_INSTRUMENTATIONS = ("django", "fastapi", "flask", "psycopg2", "urllib", "urllib3", "httpx")
