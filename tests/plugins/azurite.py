"""A real Azurite for the whole test session, on loopback ports it picks itself, its data in a
temporary folder (as fast here as in memory, and it survives a restart).

Most of the suite stands on it, so it is watched:
- the session starts only once a table and a queue round trip work;
- if it has stopped before a test starts, it is started again on its ports with its data (the
  connection strings everyone holds stay valid), and the run's summary says when and why;
- if a test fails while it no longer answers (or it keeps dying), the run stops there, as -x
  does, with its state and last lines, instead of every later test failing slowly through the
  SDKs' retries (a CI run that times out says nothing)."""

from __future__ import annotations

import http.client
import uuid

import pytest

from dev.azurite import Azurite, start_azurite

_session: list[Azurite] = []  # the session's instance, for the hooks below
_sessions: list[pytest.Session] = []
_failed: set[str] = set()
_revived: list[str] = []  # what the summary reports
MAX_REVIVALS = 3  # an Azurite that keeps dying is a problem to look at, not to paper over


def answering(instance: Azurite, timeout: float = 10.0) -> str | None:
    """None when its table and queue services answer HTTP in time, else what went wrong."""
    for name, port in (("table", instance.table_port), ("queue", instance.queue_port)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
        except OSError as e:
            return f"its {name} service did not answer: {e!r}"
        finally:
            conn.close()
    return None


def round_trip(connection_string: str) -> None:
    """A table entity and a queue message written and read back with the SDKs."""
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueClient

    name = "probe" + uuid.uuid4().hex[:12]
    tables = TableServiceClient.from_connection_string(connection_string)
    table = tables.create_table(name)
    table.create_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
    assert table.get_entity("p", "r")["v"] == 1
    tables.delete_table(name)
    q = QueueClient.from_connection_string(connection_string, name)
    q.create_queue()
    q.send_message("probe")
    assert [m.content for m in q.receive_messages()] == ["probe"]
    q.delete_queue()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Azurite:
    instance = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        round_trip(instance.connection_string)
    except Exception as e:  # any failure here means no storage test can pass
        instance.stop()
        pytest.exit(
            f"Azurite started but a storage round trip failed ({e!r}); it is {instance.state()}"
            f", and printed:\n{instance.tail()}",
            returncode=3,
        )
    _session.append(instance)
    yield instance
    _session.remove(instance)
    instance.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


def pytest_sessionstart(session: pytest.Session) -> None:
    _sessions.append(session)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _session or _session[0].alive() or len(_revived) >= MAX_REVIVALS:
        return
    instance = _session[0]
    said = f"before {item.nodeid}, Azurite had stopped ({instance.state()}). It printed:"
    said += "\n" + instance.tail()
    instance.restart()
    _revived.append(said)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _failed.add(report.nodeid)


def pytest_runtest_logfinish(nodeid: str, location) -> None:
    """After a failed test has been reported: is Azurite the reason every later test would fail?"""
    if nodeid not in _failed or not _session or not _sessions:
        return
    instance = _session[0]
    if instance.alive():
        trouble = answering(instance)  # hung: a restart at the next test would not happen
    elif len(_revived) >= MAX_REVIVALS:
        trouble = f"it stopped ({instance.state()}) again, after {len(_revived)} restarts"
    else:
        return  # the next test's setup starts it again
    if trouble:  # stop as -x does: the failures so far and their reasons are still printed
        _sessions[0].shouldstop = (
            f"the session's Azurite is unusable after {nodeid}: {trouble}. "
            f"Its last lines:\n{instance.tail()}"
        )


def pytest_terminal_summary(terminalreporter) -> None:
    for said in _revived:
        terminalreporter.write_sep("=", "Azurite was started again", yellow=True)
        terminalreporter.write_line(said)
