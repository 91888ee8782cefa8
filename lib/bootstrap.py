"""The composition root: every service, built once per process from the settings.

Triggers call `services()`; tests build their own `Services` against Azurite and the sandbox with
`build`. Nothing in lib/ imports this module: each service is handed what it needs here, so the
wiring of the whole connector reads top to bottom in one function.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import urlsplit

from lib.admin.auth import MIN_REFRESH_INTERVAL, AdminAuth
from lib.endpoints.approval import ApprovalService
from lib.endpoints.client import SmartDeps
from lib.endpoints.secrets import SecretBindings
from lib.endpoints.service import EndpointService
from lib.endpoints.validation import validate_endpoint
from lib.launch.complete import LaunchCompletion
from lib.launch.microsoft import MicrosoftSignIn
from lib.launch.start import LaunchStart
from lib.launch.visit_page import VisitPages
from lib.launch.visit_sms import VisitTexts
from lib.launch.window import SignInWindow
from lib.net.http import OutboundHttp
from lib.net.jwks import JwksCache
from lib.net.retry import RetryPolicy
from lib.notifications.certificate import NotificationCertificate
from lib.notifications.reconcile import Reconciler
from lib.notifications.records import CallRecords
from lib.notifications.subscriptions import SubscriptionService
from lib.notifications.tasks import GRAPH_TASKS_QUEUE, GraphFollower, GraphTasks
from lib.notifications.validation import ValidationTokens
from lib.notifications.webhook import NotificationReceiver
from lib.portal.session import PortalSessions
from lib.portal.signin import PortalSignIn
from lib.privacy import PrivacyKeys
from lib.reports.projection import ReportProjection
from lib.reports.service import ReportRows, Reports
from lib.reports.verdicts import Thresholds
from lib.sealing import Sealer
from lib.settings import Settings, SettingsError, get_settings
from lib.signin.binding import BrowserBinding
from lib.signin.callback import Callback, Completer
from lib.signin.sessions import SessionStore
from lib.smart.id_token import IdTokenVerifier
from lib.smart.keys import KeySet
from lib.smart.tokens import BackendTokenCache
from lib.sms.config import SmsConfig
from lib.sms.events import SmsEvents
from lib.sms.intake import SchedulingIntake
from lib.sms.join import SmsJoin
from lib.sms.numbers import PhoneNumbers
from lib.sms.sender import SmsSender
from lib.sms.sending import OptOuts, Texting
from lib.sms.signature import ReplayGuard
from lib.storage import TableStore
from lib.storage.account import queue_service, table_service
from lib.storage.queues import QueueReader, QueueSender
from lib.teams.entra import EntraApp
from lib.teams.graph import GraphClient
from lib.teams.meetings import MeetingService
from lib.telemetry import configure_telemetry
from lib.visits.mappings import ClinicianMappings
from lib.visits.opening import VisitOpener
from lib.visits.quality import CallQualityStore
from lib.visits.sealed import APPOINTMENT_ID, SealedValues
from lib.visits.store import VisitStore
from lib.visits.timeline import VISIT_EVENTS_QUEUE, VisitEvents, VisitTimeline
from lib.web.errors import AppError
from lib.web.urls import Urls
from lib.writeback.adapters import EhrCalls, EpicStatus, FhirAppointment
from lib.writeback.credentials import Credentials
from lib.writeback.failures import FailureStore
from lib.writeback.jobs import WRITEBACK_QUEUE, WritebackPlanner
from lib.writeback.progress import ProgressStore
from lib.writeback.sweep import POISON_QUEUE, PoisonSweep
from lib.writeback.worker import WriteBack

if TYPE_CHECKING:
    from pydantic import SecretStr

T = TypeVar("T")


@dataclass
class Services:
    settings: Settings
    urls: Urls
    privacy: PrivacyKeys
    store: TableStore
    http: OutboundHttp
    keys: KeySet | None
    smart: SmartDeps
    auth: AdminAuth
    sessions: SessionStore
    endpoints: EndpointService
    secrets: SecretBindings
    approvals: ApprovalService
    visits: VisitStore
    mappings: ClinicianMappings
    sealed: SealedValues
    launch: LaunchStart
    microsoft: MicrosoftSignIn
    signin_window: SignInWindow
    visit_pages: VisitPages
    visit_texts: VisitTexts
    callback: Callback
    meetings: _Lazy[MeetingService]
    portal_sessions: PortalSessions
    portal_signin: PortalSignIn
    events: VisitEvents
    timeline: VisitTimeline
    sms: SmsConfig
    sms_join: SmsJoin
    scheduling: SchedulingIntake
    texting: Texting
    sms_events: SmsEvents
    projection: ReportProjection
    reports: Reports
    thresholds: Thresholds
    graph_tasks: GraphTasks
    subscriptions: _Lazy[SubscriptionService]
    notifications: _Lazy[NotificationReceiver]
    call_records: _Lazy[CallRecords]
    reconciler: _Lazy[Reconciler]
    writeback: WriteBack
    writeback_failures: FailureStore
    writeback_queue: _Lazy[QueueSender]
    writeback_sweep: PoisonSweep


class _Lazy(Generic[T]):
    """A service built on first use (msal and the Graph client are not needed by the config API)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make

    @functools.cached_property
    def value(self) -> T:
        return self._make()

    def __call__(self) -> T:
        return self.value


def _graph(settings: Settings, entra: EntraApp) -> GraphClient:
    if not entra.configured:
        raise AppError("GRAPH-FAILED", "ENTRA_CLIENT_ID / ENTRA_CLIENT_SECRET are not set.")
    return GraphClient(
        authority=entra.authority,
        client_id=entra.client_id or "",
        client_secret=entra.secret or "",
        graph_base=settings.graph_base_url,
    )


def _subscriptions(
    settings: Settings, graph: GraphClient, store: TableStore, privacy: PrivacyKeys,
    visits: VisitStore, urls: Urls,
) -> SubscriptionService:  # fmt: skip
    pem = _secret(settings.graph_notification_certificate)
    try:
        certificate = NotificationCertificate.from_pem(pem) if pem and pem.strip() else None
    except ValueError as exc:  # SRV-NOT-CONFIGURED, naming the setting (never its value)
        raise SettingsError(f"GRAPH_NOTIFICATION_CERTIFICATE: {exc}") from None
    url = urls.graph_notifications
    return SubscriptionService(graph, store, privacy, visits, url, certificate)


def _writeback(
    settings: Settings,
    store: TableStore,
    endpoints: EndpointService,
    sealed: SealedValues,
    keys: KeySet | None,
    queue: _Lazy[QueueSender],
) -> WriteBack:
    """The EHR write-back worker. Its HTTP client never waits in the function: one attempt per
    call (429 / 503 go back on the queue with Retry-After), and a read timeout of its own."""
    http = OutboundHttp(
        local_mode=settings.local_mode,
        retries=RetryPolicy(attempts=1),
        read_timeout=settings.writeback_timeout,
    )
    calls = EhrCalls(http, Credentials(http, keys, BackendTokenCache()))
    return WriteBack(
        endpoints=endpoints,
        sealed=sealed,
        progress=ProgressStore(store),
        failures=FailureStore(store),
        adapters={"epic": EpicStatus(calls), "fhir": FhirAppointment(calls)},
        queue=queue,
        lease_seconds=settings.background_budget + 10,
    )


def _organizer(meetings: _Lazy[MeetingService], oid: str) -> tuple[str | None, str | None] | None:
    """The organizer's name and email from the directory, at report time (never stored)."""
    user = meetings().graph.get_user(oid, ("id", "displayName", "mail", "userPrincipalName"))
    if user is None:
        return None
    return user.get("displayName"), user.get("mail") or user.get("userPrincipalName")


def _reports(
    store: TableStore,
    sealed: SealedValues,
    meetings: _Lazy[MeetingService],
    thresholds: Thresholds,
) -> Reports:
    rows = ReportRows(store)
    return Reports(
        rows,
        thresholds.get,
        lambda oid: _organizer(meetings, oid),
        lambda key: sealed.open(key, APPOINTMENT_ID),
    )


def build(settings: Settings, store: TableStore | None = None) -> Services:
    store = store or TableStore(table_service(settings), settings.table_prefix)
    urls = Urls(settings.public_url)
    privacy = PrivacyKeys(settings.hash_key.get_secret_value())
    sealer = Sealer.from_setting(
        settings.sealing_keys.get_secret_value(), hash_key=settings.hash_key.get_secret_value()
    )
    http = OutboundHttp(local_mode=settings.local_mode)
    keys = load_keys(settings)
    secret = settings.entra_client_secret
    entra = EntraApp(
        host=settings.entra_authority_host,
        tenant_id=settings.entra_tenant_id,
        client_id=settings.entra_client_id,
        secret=secret.get_secret_value() if secret else None,
    )
    graph = _Lazy(lambda: _graph(settings, entra))
    meetings = _Lazy(lambda: MeetingService(graph(), join_hosts=settings.join_hosts))

    smart = SmartDeps(http, IdTokenVerifier(http), keys)  # one JWKS cache for every EHR sign-in
    sessions = SessionStore(store)
    binding = BrowserBinding(privacy, sealer, secure=urls.secure)
    secrets = SecretBindings(store)
    endpoints = EndpointService(
        store, lambda endpoint, actor: validate_endpoint(endpoint, http, keys, secrets, actor)
    )
    approvals = ApprovalService(endpoints, sessions, smart, urls)
    visits = VisitStore(store)
    mappings = ClinicianMappings(store)
    # The launch's events go on the queue like every other source's (applied by visit_events).
    events = VisitEvents(_Lazy(lambda: QueueSender(queue_service(settings), VISIT_EVENTS_QUEUE)))
    opener = VisitOpener(visits, meetings, events)
    pages = VisitPages(privacy, visits, endpoints, urls, mappings, store, sealer)
    onward = onward_origins(settings)
    window = SignInWindow(sessions, binding, urls, endpoints, visits, pages, onward)
    microsoft = MicrosoftSignIn(
        entra, sessions, binding, urls, endpoints, mappings, opener, pages, onward, window
    )
    sealed = SealedValues(store, sealer)
    completion = LaunchCompletion(
        endpoints, smart, privacy, visits, mappings, opener, microsoft, pages, sessions, sealed
    )
    portal_sessions = PortalSessions(sealer, privacy, store, secure=urls.secure)
    portal_signin = PortalSignIn(entra, sessions, binding, urls, portal_sessions)
    # The one redirect URI: each kind of sign-in and what completes it.
    callback = Callback(
        sessions,
        binding,
        {
            "provider": Completer(completion.complete, uses_state=True),
            "patient": Completer(completion.complete, uses_state=True),
            "entra": Completer(microsoft.complete),
            "approval": Completer(approvals.complete, browser_bound=False),
            "portal": Completer(portal_signin.complete),
        },
    )
    entra_keys = JwksCache(http, min_refresh_seconds=MIN_REFRESH_INTERVAL)
    sms = SmsConfig(store, endpoints, PhoneNumbers(_secret(settings.acs_connection_string)))
    endpoints.when_deleted(sms.forget_endpoint)  # no number keeps a link to a deleted endpoint
    sealed = SealedValues(store, sealer)
    # What follows from a visit's state: the EHR write-back's planner listens to the timeline.
    writeback_queue = _Lazy(lambda: QueueSender(queue_service(settings), WRITEBACK_QUEUE))
    planner = WritebackPlanner(endpoints, ProgressStore(store), writeback_queue)
    join = SmsJoin(privacy, visits, endpoints, sms, opener, urls)
    acs = _secret(settings.acs_connection_string)
    sender, optouts = SmsSender(acs), OptOuts(store, privacy)
    texting = Texting(store, sms, visits, sealed, sender, optouts, join.link)
    sms_events = SmsEvents(
        store, privacy, _secret(settings.sms_events_secret), optouts, texting.ledger, sms, sender
    )
    # The report rows follow each applied event, and each schedule change (a reschedule moves
    # the visit's day): lib/reports/projection.py.
    projection = ReportProjection(
        store, visits, texting.ledger, lambda e: sms.settings(e).time_zone
    )
    thresholds = Thresholds(store)

    def plan(visit, change: str) -> int:
        planned = texting.plan(visit, change)
        projection.refresh(visit.key)
        return planned

    # Graph's change notifications: subscriptions made from the visit timeline (never the launch),
    # slow work on the graph-tasks queue.
    graph_tasks = GraphTasks(_Lazy(lambda: QueueSender(queue_service(settings), GRAPH_TASKS_QUEUE)))
    subscriptions = _Lazy(lambda: _subscriptions(settings, graph(), store, privacy, visits, urls))
    tenant = settings.entra_tenant_id
    graph_proof = ValidationTokens(
        entra_keys,
        issuer=settings.entra_issuer,
        tenant_id=tenant,
        client_id=settings.entra_client_id,
    )
    notifications = _Lazy(
        lambda: NotificationReceiver(
            subscriptions(), events, graph_tasks, privacy, tenant, graph_proof
        )
    )
    call_records = _Lazy(
        lambda: CallRecords(
            graph(), subscriptions(), CallQualityStore(store), events, graph_tasks, privacy
        )
    )
    reconciler = _Lazy(lambda: Reconciler(graph(), visits, events, privacy, tenant))
    follower = GraphFollower(graph_tasks, settings.graph_reconcile_delay)
    return Services(
        settings=settings,
        urls=urls,
        privacy=privacy,
        store=store,
        http=http,
        keys=keys,
        smart=smart,
        auth=AdminAuth(settings, entra_keys),
        sessions=sessions,
        endpoints=endpoints,
        secrets=secrets,
        approvals=approvals,
        visits=visits,
        mappings=mappings,
        sealed=sealed,
        launch=LaunchStart(endpoints, smart, sessions, binding, urls, onward),
        microsoft=microsoft,
        signin_window=window,
        visit_pages=pages,
        visit_texts=VisitTexts(pages, visits, sms, sender, texting, smart, privacy),
        callback=callback,
        meetings=meetings,
        portal_sessions=portal_sessions,
        portal_signin=portal_signin,
        events=events,
        timeline=VisitTimeline(visits, listeners=[follower, planner, projection]),
        sms=sms,
        sms_join=join,
        scheduling=SchedulingIntake(
            endpoints,
            sms,
            visits,
            sealed,
            privacy,
            mappings,
            ReplayGuard(store, privacy),
            plan,
        ),
        texting=texting,
        sms_events=sms_events,
        projection=projection,
        reports=_reports(store, sealed, meetings, thresholds),
        thresholds=thresholds,
        graph_tasks=graph_tasks,
        subscriptions=subscriptions,
        notifications=notifications,
        call_records=call_records,
        reconciler=reconciler,
        writeback=_writeback(settings, store, endpoints, sealed, keys, writeback_queue),
        writeback_failures=FailureStore(store),
        writeback_queue=writeback_queue,
        writeback_sweep=PoisonSweep(
            QueueReader(queue_service(settings), POISON_QUEUE), FailureStore(store)
        ),
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def onward_origins(settings: Settings) -> tuple[str, ...]:
    """Where a browser goes after our callback: Microsoft's sign-in and the meetings."""
    hosts = {_origin(settings.entra_authority_host), _origin(settings.graph_base_url)}
    hosts |= {f"https://{h}" for h in settings.join_hosts}
    return tuple(sorted(hosts))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def load_keys(settings: Settings) -> KeySet | None:
    if settings.signing_keys is None or not settings.signing_keys.get_secret_value().strip():
        return None
    return KeySet.from_pems(split_pem(settings.signing_keys.get_secret_value()))


def split_pem(text: str) -> list[str]:
    """PEM blocks of a setting with several keys (literal \\n accepted, as app settings do)."""
    text = text.replace("\\n", "\n")
    return re.findall(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", text, flags=re.S)


@functools.cache
def services() -> Services:
    """The process's services, built on first use (or by the warmup function). Telemetry starts
    here, before any outbound call: off, and not imported, without a connection string."""
    settings = get_settings()
    _start_telemetry()
    return build(settings)


@functools.cache
def _start_telemetry() -> None:
    """Once per process, whichever services come first."""
    configure_telemetry(get_settings())


def background_storage_options(settings: Settings) -> dict[str, float | int]:
    """A timer's or queue's storage client: nobody waits, so longer reads and more retries."""
    return {
        "connection_timeout": 5,
        "read_timeout": settings.background_storage_read_timeout,
        "retry_total": settings.background_storage_retries,
    }


@functools.cache
def background_services() -> Services:
    """The services for timers and queues (run under CONNECTOR_BACKGROUND_BUDGET_SECONDS)."""
    settings = get_settings()
    service = table_service(settings, **background_storage_options(settings))
    _start_telemetry()
    return build(settings, TableStore(service, settings.table_prefix))
