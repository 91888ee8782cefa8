"""dev/host, the local Functions host: its pure parts first, then the fixture app in
tests/dev/fixtures/hostapp served by `python -m dev.host` over HTTP with a real Azurite, then the
Python API (LocalHost) in-process."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from dev.host import LocalHost, QueueOptions, RouteTemplate, queues, serving, timers
from dev.host import settings as host_settings
from dev.procs import ROOT
from dev.stack import RunningHost

APP_DIR = ROOT / "tests" / "dev" / "fixtures" / "hostapp"
SETTINGS = APP_DIR / "test.settings.json"


def wait_for(probe: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("api/items/{id:int}", "/api/items/5", {"id": "5"}),
        ("api/items/{id:int}", "/api/items/-3", {"id": "-3"}),
        ("api/items/{id:int}", "/API/Items/5/", {"id": "5"}),  # literals ignore case; slash
        ("api/items/{id:int}", "/api/items/x", None),
        ("api/items/{id:int}", "/api/items/99999999999", None),  # beyond Int32
        ("api/items/{id:long}", "/api/items/99999999999", {"id": "99999999999"}),
        ("api/items/{id}", "/api/items", None),
        ("api/items/{id}", "/api/items/a/b", None),
        ("api/items/{name:alpha}", "/api/items/abc", {"name": "abc"}),
        ("api/items/{name:alpha}", "/api/items/ab1", None),
        (
            "api/g/{id:guid}",
            "/api/g/6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            {"id": "6f9619ff-8b86-d011-b42d-00cf4fc964ff"},
        ),
        ("api/g/{id:guid}", "/api/g/not-a-guid", None),
        ("api/b/{flag:bool}", "/api/b/true", {"flag": "true"}),
        ("api/greet/{name?}", "/api/greet", {}),
        ("api/greet/{name?}", "/api/greet/bob", {"name": "bob"}),
        ("api/page/{n:int=1}", "/api/page", {"n": "1"}),
        ("api/page/{n:int=1}", "/api/page/3", {"n": "3"}),
        ("api/files/{*rest}", "/api/files/a/b.txt", {"rest": "a/b.txt"}),
        ("api/files/{*rest}", "/api/files", {}),
        ("{*all}", "/anything/at/all", {"all": "anything/at/all"}),
        ("api/r/{n:range(1,5)}", "/api/r/5", {"n": "5"}),
        ("api/r/{n:range(1,5)}", "/api/r/6", None),
        ("api/r/{n:min(10)}", "/api/r/abc", None),
        ("api/l/{s:minlength(3)}", "/api/l/ab", None),
        ("api/l/{s:length(2)}", "/api/l/ab", {"s": "ab"}),
        ("api/x/{code:regex(^ab+$)}", "/api/x/abbb", {"code": "abbb"}),
        ("api/x/{code:regex(^ab+$)}", "/api/x/ba", None),
        ("api/docs/{name}.{ext}", "/api/docs/report.v2.pdf", {"name": "report.v2", "ext": "pdf"}),
        ("", "/", {}),
    ],
)
def test_route_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.compile(template).match(path) == expected


def test_route_precedence_prefers_literals_then_constraints_then_catch_all() -> None:
    templates = ["api/{*rest}", "api/items/{id}", "api/items/{id:int}", "api/items/new"]
    ordered = sorted(templates, key=lambda t: RouteTemplate.compile(t).precedence)
    assert ordered == ["api/items/new", "api/items/{id:int}", "api/items/{id}", "api/{*rest}"]


def test_route_errors_are_reported() -> None:
    with pytest.raises(ValueError, match="not known"):
        RouteTemplate.compile("api/{id:nonsense}")
    with pytest.raises(ValueError, match="last segment"):
        RouteTemplate.compile("api/{*rest}/more")


def test_local_settings_fill_the_environment_but_never_override_it(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"A": "from-file", "B": "from-file", "FLAG": True, "N": 3},
                "Host": {"LocalHttpPort": 7199},
            }
        )
    )
    environ = {"B": "from-env"}
    applied = host_settings.apply_settings(host_settings.read_local_settings(path), environ)
    assert environ == {"A": "from-file", "B": "from-env", "FLAG": "true", "N": "3"}
    assert sorted(applied) == ["A", "FLAG", "N"]
    assert host_settings.local_http_port(path) == 7199
    assert host_settings.read_local_settings(tmp_path / "missing.json") == {}
    assert host_settings.local_http_port(tmp_path / "missing.json") is None


def test_setting_expressions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEV_HOST_TEST_Q", "orders")
    assert host_settings.resolve_setting_expressions("%DEV_HOST_TEST_Q%-in") == "orders-in"
    monkeypatch.delenv("DEV_HOST_TEST_Q")
    with pytest.raises(LookupError, match="does not resolve"):
        host_settings.resolve_setting_expressions("%DEV_HOST_TEST_Q%")


def test_host_json_queue_options_and_defaults(tmp_path: Path) -> None:
    assert host_settings.HostOptions.load(tmp_path) == host_settings.HostOptions()
    assert QueueOptions() == QueueOptions(16, 0.0, 5, 60.0, "base64")
    options = host_settings.HostOptions.load(APP_DIR)
    assert options.route_prefix == "api"
    assert options.queues == QueueOptions(4, 1.0, 2, 1.0, "base64")
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "extensions": {
                    "http": {"routePrefix": ""},
                    "queues": {
                        "messageEncoding": "None",
                        "batchSize": 64,
                        "visibilityTimeout": "1.00:00:30.5",
                    },
                }
            }
        )
    )
    options = host_settings.HostOptions.load(tmp_path)
    assert options.route_prefix == ""
    assert options.queues.message_encoding == "none"
    assert options.queues.batch_size == 32  # the service's limit
    assert options.queues.visibility_timeout == 86430.5


def test_message_encodings() -> None:
    body = "héllo".encode()
    assert queues.decode_message(queues.encode_message(body, "base64"), "base64") == body
    assert queues.encode_message(body, "none") == "héllo"
    assert queues.decode_message("héllo", "none") == body
    with pytest.raises(ValueError, match="base64"):
        queues.decode_message("not base64!", "base64")


def test_queue_output_values() -> None:
    assert queues.output_bodies("a") == [b"a"]
    assert queues.output_bodies(b"\x00") == [b"\x00"]
    assert queues.output_bodies(["a", b"b", func.QueueMessage(body="c")]) == [b"a", b"b", b"c"]
    with pytest.raises(TypeError):
        queues.output_bodies({"not": "supported"})


def test_timer_request_is_past_due_only_when_late() -> None:
    due = datetime(2025, 1, 1, 12)
    upcoming = due + timedelta(seconds=1)
    on_time = timers.timer_request(due, due + timedelta(milliseconds=300), None, upcoming)
    late = timers.timer_request(due, due + timedelta(seconds=3), None, upcoming)
    assert (on_time.past_due, late.past_due) == (False, True)
    assert late.schedule_status["Next"] == upcoming.isoformat()


def test_timespan_schedules() -> None:
    schedule = timers.parse_schedule("00:00:30")
    assert schedule.next_after(datetime(2025, 1, 1)) == datetime(2025, 1, 1, 0, 0, 30)


def test_http_responses_keep_what_the_function_made() -> None:
    response = func.HttpResponse(
        "{}", status_code=201, mimetype="application/json", headers={"X-A": "1"}
    )
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    out = serving.to_wsgi_response(response)
    assert out.status_code == 201
    assert out.headers["Content-Type"] == "application/json"  # no charset added to JSON
    assert out.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert serving.to_wsgi_response("hi").headers["Content-Type"] == "text/plain; charset=utf-8"
    explicit = func.HttpResponse("x", headers={"content-type": "text/csv"})
    assert serving.to_wsgi_response(explicit).headers.getlist("Content-Type") == ["text/csv"]
    assert serving.to_wsgi_response(None).status_code == 204
    with pytest.raises(TypeError):
        serving.to_wsgi_response({"a": 1})


# --------------------------------------------------------------------------- over HTTP


@dataclass
class HostApp:
    host: RunningHost
    markers: Path
    queues: dict[str, str]
    connection: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.host.url + path, timeout=10, **kwargs)

    def queue(self, setting: str, suffix: str = "") -> QueueClient:
        client = QueueClient.from_connection_string(self.connection, self.queues[setting] + suffix)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def marker_lines(self, name: str) -> list[str]:
        path = self.markers / name
        return path.read_text().splitlines() if path.exists() else []


def queue_names(prefix: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    settings = ("IN", "RESULT", "HTTP", "TIMER")
    return {f"HOSTAPP_{s}_QUEUE": f"{prefix}-{s.lower()}-{suffix}" for s in settings}


@pytest.fixture(scope="module")
def hostapp(start_host, azurite, tmp_path_factory: pytest.TempPathFactory) -> HostApp:
    markers = tmp_path_factory.mktemp("hostapp-markers")
    queues = queue_names("cli")
    env = {
        "AzureWebJobsStorage": azurite.connection_string,  # beats the file's dev storage
        "HOSTAPP_OVERRIDDEN": "from-env",
        "HOSTAPP_MARKER_DIR": str(markers),
        **queues,
    }
    host = start_host(APP_DIR, env=env, settings=SETTINGS)
    return HostApp(host, markers, queues, azurite.connection_string)


def receive_bodies(client: QueueClient, count: int, timeout: float = 10.0) -> list[bytes]:
    """Take `count` messages off a queue, base64-decoded as the host wrote them."""
    bodies: list[bytes] = []

    def enough() -> bool:
        for message in client.receive_messages(max_messages=32, messages_per_page=32):
            bodies.append(base64.b64decode(message.content, validate=True))
            client.delete_message(message)
        return len(bodies) >= count

    wait_for(enough, timeout, f"{count} messages on {client.queue_name}")
    return bodies


def send_text(client: QueueClient, text: str) -> None:
    client.send_message(base64.b64encode(text.encode()).decode())


def queue_length(client: QueueClient) -> int:
    return client.get_queue_properties().approximate_message_count


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", "/api/items/5", 200, {"kind": "int", "id": "5"}),
        ("GET", "/api/items/abc", 200, {"kind": "alpha", "name": "abc"}),
        ("GET", "/api/items/latest", 200, {"kind": "literal"}),  # literal beats {name:alpha}
        ("GET", "/api/items/a-1", 404, None),  # neither int nor alpha
        ("GET", "/api/items", 405, None),  # only POST there
        ("DELETE", "/api/items/5", 405, None),
        ("GET", "/api/nothing", 404, None),
        ("GET", "/items/5", 404, None),  # the route prefix is required
        ("GET", "/api/files/a/b/c.txt", 200, {"path": "a/b/c.txt"}),
        (
            "GET",
            "/api/docs/6f9619ff-8b86-d011-b42d-00cf4fc964ff.pdf",
            200,
            {"id": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "ext": "pdf"},
        ),
        ("GET", "/api/disabled", 404, None),  # AzureWebJobs.disabled_fn.Disabled
    ],
)
def test_http_routing(
    hostapp: HostApp, method: str, path: str, status: int, expected: dict | None
) -> None:
    response = requests.request(method, hostapp.host.url + path, timeout=10)
    assert response.status_code == status
    if expected is not None:
        assert response.json() == expected


def test_405_names_the_allowed_methods(hostapp: HostApp) -> None:
    response = requests.delete(hostapp.host.url + "/api/echo", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST, PUT"


def test_optional_parameters_and_functions_without_a_route(hostapp: HostApp) -> None:
    assert hostapp.get("/api/greet").text == "hello world"
    assert hostapp.get("/api/greet/ada").text == "hello ada"
    assert hostapp.get("/api/no_route").text == "no route"


def test_request_reaches_the_function_and_the_response_comes_back(hostapp: HostApp) -> None:
    response = requests.put(
        hostapp.host.url + "/api/echo?status=203&x=1",
        data="body ✓".encode(),
        headers={"X-Custom": "v"},
        timeout=10,
    )
    assert response.status_code == 203
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Echo"] == "yes"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    echoed = response.json()
    assert echoed["method"] == "PUT"
    assert echoed["url"] == hostapp.host.url + "/api/echo?status=203&x=1"
    assert echoed["params"] == {"status": "203", "x": "1"}
    assert echoed["headers"]["x-custom"] == "v"
    assert echoed["body"] == "body ✓"
    assert echoed["function"] == "echo"  # the context argument


def test_post_json_and_created_status(hostapp: HostApp) -> None:
    response = requests.post(hostapp.host.url + "/api/items", json={"n": 1}, timeout=10)
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/items/1"
    assert response.json() == {"created": {"n": 1}}


def test_async_functions_and_plain_string_returns(hostapp: HostApp) -> None:
    response = hostapp.get("/api/async")
    assert (response.status_code, response.text) == (200, "async ok")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    response = hostapp.get("/api/text")
    assert (response.status_code, response.text) == (200, "plain text")


def test_unhandled_exception_is_a_500_with_the_traceback_logged(hostapp: HostApp) -> None:
    response = hostapp.get("/api/boom")
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "boom" not in response.text  # no internals to the client
    wait_for(lambda: "RuntimeError: boom for the test" in hostapp.host.log(), 5, "traceback")
    assert "Traceback (most recent call last)" in hostapp.host.log()


def test_request_log_leaves_out_the_query_string(hostapp: HostApp) -> None:
    assert hostapp.get("/api/echo?code=s3cret-token-value").status_code == 200
    line = wait_for(
        lambda: [line for line in hostapp.host.log().splitlines() if "GET /api/echo 200" in line],
        5,
        "the request log line",
    )
    assert line[0].endswith("ms")
    assert "s3cret-token-value" not in hostapp.host.log()


def test_environment_beats_local_settings(hostapp: HostApp) -> None:
    assert hostapp.get("/api/settings").json() == {
        "HOSTAPP_FROM_SETTINGS": "from-settings",
        "HOSTAPP_OVERRIDDEN": "from-env",
    }


def test_a_function_with_an_unresolvable_setting_is_reported_and_the_rest_run(
    hostapp: HostApp,
) -> None:
    assert "The 'unset_schedule' function is in error" in hostapp.host.log()
    assert "HOSTAPP_UNSET_SCHEDULE" in hostapp.host.log()
    assert hostapp.get("/api/items/1").status_code == 200


def test_http_function_queue_output(hostapp: HostApp) -> None:
    response = requests.post(hostapp.host.url + "/api/enqueue", data="hi", timeout=10)
    assert response.status_code == 202
    bodies = receive_bodies(hostapp.queue("HOSTAPP_HTTP_QUEUE"), 2)
    assert sorted(bodies) == [b"hi", b"hi-again"]


def test_warmup_runs_once_before_the_first_request_is_served(hostapp: HostApp) -> None:
    # The fixture returns once the host listens: by then the warmup function has finished.
    assert hostapp.marker_lines("warmup") == ["done"]
    assert hostapp.get("/api/items/5").status_code == 200
    assert hostapp.marker_lines("warmup") == ["done"]


def test_timer_fires_every_second_into_its_queue_output(hostapp: HostApp) -> None:
    (body, *_) = receive_bodies(hostapp.queue("HOSTAPP_TIMER_QUEUE"), 1, timeout=5)
    assert json.loads(body) == {"past_due": False}


def test_timer_schedule_from_a_setting_and_run_on_startup(hostapp: HostApp) -> None:
    wait_for(lambda: hostapp.marker_lines("from_setting"), 5, "the %HOSTAPP_SCHEDULE% timer")
    assert hostapp.marker_lines("on_startup") == ["past_due=False"]  # yearly, ran once at start
    assert hostapp.marker_lines("unset_schedule") == []


def test_a_slow_timer_never_overlaps_itself(hostapp: HostApp) -> None:
    runs = wait_for(
        lambda: len(hostapp.marker_lines("slow")) >= 2 and hostapp.marker_lines("slow"),
        8,
        "two runs of the slow timer",
    )
    spans = [tuple(map(float, line.split())) for line in runs]
    for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= previous_end


def test_queue_message_is_processed_and_deleted(hostapp: HostApp) -> None:
    inbox = hostapp.queue("HOSTAPP_IN_QUEUE")
    text = f"hello-{uuid.uuid4().hex[:6]}"
    send_text(inbox, text)
    (body,) = receive_bodies(hostapp.queue("HOSTAPP_RESULT_QUEUE"), 1)
    result = json.loads(body)
    assert result["body"] == text
    assert result["dequeue_count"] == 1
    assert result["id"] and result["has_times"] and result["has_pop_receipt"]
    wait_for(lambda: queue_length(inbox) == 0, 5, "the message to be deleted")


def test_failing_message_is_retried_then_moved_to_poison_intact(hostapp: HostApp) -> None:
    inbox = hostapp.queue("HOSTAPP_IN_QUEUE")
    text = f"fail-{uuid.uuid4().hex[:6]}"
    send_text(inbox, text)
    poison = hostapp.queue("HOSTAPP_IN_QUEUE", "-poison")
    (message,) = wait_for(lambda: list(poison.peek_messages()), 10, "the poison message")
    assert base64.b64decode(message.content) == text.encode()  # same body, same encoding
    attempts = [line for line in hostapp.marker_lines("attempts") if line.startswith(text)]
    assert attempts == [f"{text} 1", f"{text} 2"]  # host.json maxDequeueCount is 2
    wait_for(lambda: queue_length(inbox) == 0, 5, "the original to be deleted")
    assert "Moving message to queue" in hostapp.host.log()


def test_no_timers_flag_and_clean_stop_on_sigterm(start_host, azurite, tmp_path: Path) -> None:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "HOSTAPP_MARKER_DIR": str(tmp_path),
        **queue_names("quiet"),
    }
    host = start_host(APP_DIR, env=env, settings=SETTINGS, args=("--no-timers",))
    assert requests.get(host.url + "/api/no_route", timeout=10).status_code == 200
    host.proc.send_signal(signal.SIGTERM)
    assert host.proc.wait(10) == 0
    assert "Stopping the host" in host.log()
    assert not (tmp_path / "on_startup").exists()  # run_on_startup needs timers


def test_https_with_a_certificate_and_a_silent_client_stalls_nobody(
    start_host, azurite, tmp_path: Path
) -> None:
    """`--cert` / `--key` (as `func start --useHttps --cert`): the app's public URL is https."""
    from dev.sandbox.certs import issue_server_files, load_or_create_ca

    _, ca_file = load_or_create_ca(tmp_path)
    tls = issue_server_files(ca_file, ("127.0.0.1",), tmp_path / "app")
    env = {"AzureWebJobsStorage": azurite.connection_string, **queue_names("tls")}
    host = start_host(APP_DIR, env=env, settings=SETTINGS, args=("--no-timers",), tls=tls)
    assert host.url.startswith("https://")
    with socket.create_connection(("127.0.0.1", host.port)):  # connects, never shakes hands
        answer = requests.get(host.url + "/api/no_route", timeout=10, verify=str(ca_file))
    assert answer.status_code == 200


# --------------------------------------------------------------------------- Python API


def port_is_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_python_api(azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    original = func.FunctionRegister.get_functions

    def counting(app: func.FunctionRegister) -> list:
        calls.append(app)
        return original(app)

    monkeypatch.setattr(func.FunctionRegister, "get_functions", counting)
    assert "HOSTAPP_FROM_SETTINGS" not in os.environ
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "HOSTAPP_OVERRIDDEN": "from-api",
        "HOSTAPP_MARKER_DIR": str(tmp_path),
        **queue_names("api"),
    }
    for _ in range(2):  # a second start in one process loads a fresh app object
        with LocalHost(APP_DIR, port=0, settings=SETTINGS, env=env, timers=False) as host:
            assert host.port != 0 and port_is_open(host.port)
            settings = requests.get(host.url + "/api/settings", timeout=10).json()
            assert settings["HOSTAPP_OVERRIDDEN"] == "from-api"
            assert requests.get(host.url + "/api/async", timeout=10).text == "async ok"
            assert {f.name for f in host.functions} >= {"echo", "work", "every_second"}
        assert not port_is_open(host.port)
    assert len(calls) == 2 and calls[0] is not calls[1]  # once per app object
    assert "HOSTAPP_FROM_SETTINGS" not in os.environ  # the environment is put back
    assert "HOSTAPP_OVERRIDDEN" not in os.environ
    assert str(APP_DIR) not in sys.path
    assert not (tmp_path / "on_startup").exists()


def test_a_message_dequeued_too_often_goes_to_poison_without_running(
    azurite, tmp_path: Path
) -> None:
    # As when a host died while holding it: its dequeue count is already past the maximum.
    queues = queue_names("stale")
    inbox = QueueClient.from_connection_string(
        azurite.connection_string, queues["HOSTAPP_IN_QUEUE"]
    )
    inbox.create_queue()
    send_text(inbox, "stale")
    for _ in range(3):  # host.json maxDequeueCount is 2
        (message,) = inbox.receive_messages(visibility_timeout=1, max_messages=1)
        inbox.update_message(message, message.pop_receipt, visibility_timeout=0)
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "HOSTAPP_MARKER_DIR": str(tmp_path),
        **queues,
    }
    poison = QueueClient.from_connection_string(
        azurite.connection_string, queues["HOSTAPP_IN_QUEUE"] + "-poison"
    )
    poison.create_queue()
    with LocalHost(APP_DIR, port=0, settings=SETTINGS, env=env, timers=False):
        (message,) = wait_for(lambda: list(poison.peek_messages()), 10, "the poison message")
    assert base64.b64decode(message.content) == b"stale"
    assert not (tmp_path / "attempts").exists()  # the function never saw it


def test_an_invocation_continues_the_callers_w3c_trace_or_starts_its_own() -> None:
    from dev.host.invocation import invocation_trace

    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    mine = invocation_trace(caller).trace_parent.split("-")
    assert mine[1] == "0af7651916cd43dd8448eb211c80319c" and mine[2] != "b7ad6b7169203331"
    for junk in (None, "", "01-x", "00-" + "0" * 32 + "-b7ad6b7169203331-01"):
        fresh = invocation_trace(junk).trace_parent.split("-")
        assert len(fresh[1]) == 32 and fresh[1] != "0" * 32 and fresh[3] == "01"


def test_a_context_parameter_must_be_annotated_as_the_worker_requires() -> None:
    """The Python worker refuses `context: func.Context | None`; so does the dev host."""
    from dev.host.functions import index_functions

    def app_with(annotation: str) -> func.FunctionApp:
        app = func.FunctionApp()
        namespace: dict[str, Any] = {"func": func}
        exec(  # the annotation as the worker reads it: resolved from the function's globals
            f"def probe(req: func.HttpRequest, context: {annotation}) -> func.HttpResponse:\n"
            "    return func.HttpResponse('ok')\n",
            namespace,
        )
        app.route(route="probe")(namespace["probe"])
        return app

    assert index_functions(app_with("func.Context"), ".")[0].parameters == ["req", "context"]
    with pytest.raises(TypeError, match=r"expected to be of type azure\.functions\.Context"):
        index_functions(app_with("func.Context | None"), ".")
