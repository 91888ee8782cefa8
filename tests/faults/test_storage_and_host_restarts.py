"""Storage killed and restarted, a timer meeting a storage outage, and the host killed in the
middle of a request. A stack of its own (its own Azurite with a data folder, its own host) on the
session's sandbox, which stays pointed at the session's app: nothing here needs the EHR to call
back."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from azure.storage.queue import QueueClient

import lib.bootstrap
from dev.azurite import Azurite, start_azurite
from dev.procs import ROOT, free_port
from dev.stack import (
    RunningHost,
    app_certificate,
    app_env,
    launch_host,
    settings_env,
    wait_healthy,
)
from functions import cleanup
from lib.settings import load_settings
from lib.storage import TableStore
from lib.storage.account import table_service
from tests.dev.test_host import APP_DIR, SETTINGS, queue_names, receive_bodies, send_text
from tests.e2e.test_launch import APPROVER
from tests.faults.conftest import BUDGET, SLACK


@dataclass
class Stack:
    azurite: Azurite
    host: RunningHost
    env: dict[str, str]
    folder: Path
    admin: requests.Session
    tls: tuple[Path, Path]
    ca: Path

    def api(self, path: str) -> str:
        return f"{self.host.url}/api/{path}"

    def restart_host(self) -> None:
        empty = self.folder / "local.settings.json"
        log = self.folder / f"host-{time.monotonic_ns()}.log"
        self.host = launch_host(
            ROOT, log, env=self.env, settings=empty, port=self.host.port, tls=self.tls
        )


@pytest.fixture(scope="module")
def stack(sandbox, tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("restarts")
    data = folder / "azurite"
    port = free_port()
    (folder / "local.settings.json").write_text('{"Values": {}}')
    tls = app_certificate(sandbox.ca_file, folder / "tls")
    admin = requests.Session()
    admin.trust_env = False
    admin.verify = str(sandbox.ca_file)
    admin.headers["Authorization"] = "Bearer " + sandbox.entra.mint(
        roles=["Connector.Admin"], user="admin"
    )
    made: Stack | None = None
    azurite = start_azurite(data)
    try:
        env = app_env(azurite.connection_string, sandbox, f"https://127.0.0.1:{port}", "rs")
        host = launch_host(
            ROOT, folder / "host.log", env=env, settings=folder / "local.settings.json",
            port=port, tls=tls,
        )  # fmt: skip
        made = Stack(azurite, host, env, folder, admin, tls, sandbox.ca_file)
        wait_healthy(host.url + "/api/health", sandbox.ca_file)
        yield made
    finally:  # whatever failed, and whichever Azurite and host the tests restarted last
        if made is not None:
            made.host.stop()
        (made.azurite if made is not None else azurite).stop()


def endpoint_body(sandbox, endpoint_id: str, vendor: str = "cerner") -> dict:
    return {
        "id": endpoint_id,
        "fhir_base_url": sandbox.ehr_base(vendor),
        "vendor": vendor,
        "environment": "test",
        "organization": f"Restart Org {endpoint_id}",
        "client_id": "evc-cerner-jwt",
        "client_auth": {"method": "private_key_jwt", "alg": "ES384"},
        **({"approver": APPROVER} if vendor == "epic" else {}),
    }


@pytest.mark.timeout(120)
def test_storage_killed_and_restarted(stack, sandbox):
    made = stack.admin.post(stack.api("config/endpoints"), json=endpoint_body(sandbox, "kept"))
    assert made.status_code == 201, made.text

    stack.azurite.stop()
    started = time.monotonic()
    down = stack.admin.get(stack.api("config/endpoints/kept"), timeout=30)
    took = time.monotonic() - started
    assert down.status_code == 503 and down.json()["code"] == "SRV-STORAGE-UNAVAILABLE"
    assert int(down.headers["Retry-After"]) > 0
    assert took < BUDGET + SLACK, f"the answer took {took:.1f} s"
    health = requests.get(stack.api("health"), timeout=30, verify=stack.ca)
    assert health.status_code == 503 and health.json()["storage"] == "unreachable"
    assert "dependency unavailable: storage" in stack.host.log()

    stack.azurite.restart()
    # no restart of the host: its clients reconnect
    wait_healthy(stack.api("health"), stack.ca, timeout=30)
    kept = stack.admin.get(stack.api("config/endpoints/kept"), timeout=30)
    assert kept.status_code == 200 and kept.json()["id"] == "kept"  # nothing accepted is lost


@pytest.mark.timeout(120)
def test_the_host_killed_mid_request_loses_nothing_it_accepted(stack, sandbox):
    # Validation (inside the create) waits on the EHR's discovery: the host dies meanwhile.
    sandbox.inject(family="ehr-discovery", kind="hang", seconds=8, count=None)
    answers: list[object] = []

    def create() -> None:
        try:
            body = endpoint_body(sandbox, "inflight", "epic")
            answers.append(stack.admin.post(stack.api("config/endpoints"), json=body, timeout=30))
        except requests.RequestException as exc:
            answers.append(exc)

    try:
        worker = threading.Thread(target=create)
        worker.start()
        time.sleep(1.5)
        os.killpg(stack.host.proc.pid, signal.SIGKILL)
        stack.host.proc.wait(10)
        worker.join(30)
    finally:
        sandbox.faults.reset()
    assert isinstance(answers[0], requests.RequestException)  # no answer: nothing was promised

    stack.restart_host()
    wait_healthy(stack.api("health"), stack.ca)
    assert stack.admin.get(stack.api("config/endpoints/inflight")).status_code == 404
    again = stack.admin.post(
        stack.api("config/endpoints"), json=endpoint_body(sandbox, "inflight", "epic")
    )
    assert again.status_code == 201, again.text  # the admin's retry simply works


@pytest.mark.timeout(60)
def test_a_timer_run_meeting_a_storage_outage_stops_cleanly(monkeypatch, caplog):
    dead = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    storage = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"TableEndpoint={dead};QueueEndpoint={dead};"
    )
    settings = load_settings(
        settings_env(AzureWebJobsStorage=storage, CONNECTOR_BACKGROUND_STORAGE_RETRIES="1")
    )
    store = TableStore(
        table_service(settings, **lib.bootstrap.background_storage_options(settings)), "t"
    )
    monkeypatch.setattr(
        lib.bootstrap, "background_services", lambda: lib.bootstrap.build(settings, store)
    )
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    cleanup.cleanup(SimpleNamespace(past_due=False))  # returns: the host sees a finished run
    assert time.monotonic() - started < settings.background_budget
    stopped = [r for r in caplog.records if "dependency unavailable: storage" in r.getMessage()]
    assert stopped and "cleanup stopped" in stopped[0].getMessage()
    assert stopped[0].budget_kind == "background"


@pytest.mark.timeout(120)
def test_the_dev_host_resumes_polling_queues_after_storage_restarts(start_host, tmp_path_factory):
    data = tmp_path_factory.mktemp("queues-azurite")
    azurite = start_azurite(data)
    markers = tmp_path_factory.mktemp("queues-markers")
    queues = queue_names("restart")
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "HOSTAPP_MARKER_DIR": str(markers),
        **queues,
    }
    try:
        start_host(APP_DIR, env=env, settings=SETTINGS)

        def client(setting: str) -> QueueClient:
            made = QueueClient.from_connection_string(azurite.connection_string, queues[setting])
            with contextlib.suppress(Exception):
                made.create_queue()
            return made

        send_text(client("HOSTAPP_IN_QUEUE"), "before")
        assert b"before" in receive_bodies(client("HOSTAPP_RESULT_QUEUE"), 1, timeout=20)[0]

        azurite.restart(pause=3)  # the host's pollers meet a refused connection a few times
        send_text(client("HOSTAPP_IN_QUEUE"), "after")
        assert b"after" in receive_bodies(client("HOSTAPP_RESULT_QUEUE"), 1, timeout=30)[0]
    finally:
        azurite.stop()
