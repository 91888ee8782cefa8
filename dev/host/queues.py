"""Queues on Azurite: output delivery, and queue triggers polled with the real host's rules
(batchSize, visibilityTimeout, maxDequeueCount, `<queue>-poison`)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.functions import _abc as func_abc
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient

from dev.host.functions import FunctionInfo, binding_attr
from dev.host.settings import MIN_POLL_SECONDS, QueueOptions, resolve_setting_expressions

if TYPE_CHECKING:
    from dev.host.invocation import Invoker

log = logging.getLogger("dev.host")

DEFAULT_CONNECTION = "AzureWebJobsStorage"
# Messages stay invisible this long while a function works on them (the real host's default).
# A host killed mid-run leaves its messages hidden that long; the write-back bench, which kills
# workers on purpose, shortens it with DEV_HOST_PROCESSING_VISIBILITY_SECONDS.
# The host's own storage calls (polling, deleting, poisoning) are the Functions host's: in Azure
# the app's telemetry never sees them. With telemetry on, the Azure SDK skips its spans for a
# call given this, and `untraced()` keeps the HTTP instrumentation under it quiet too.
HOST_CALL = {"tracing_options": {"enabled": False}}
PROCESSING_VISIBILITY_SECONDS = int(os.environ.get("DEV_HOST_PROCESSING_VISIBILITY_SECONDS", "600"))


def connection_string(setting: str | None) -> str:
    """The connection string a binding's `connection` setting names (AzureWebJobsStorage)."""
    name = setting or DEFAULT_CONNECTION
    for candidate in (name, f"AzureWebJobs{name}"):
        if os.environ.get(candidate):
            return os.environ[candidate]
    raise LookupError(
        f"storage connection setting '{name}' is not set (dev/host needs a connection "
        f"string such as UseDevelopmentStorage=true, not {name}__queueServiceUri)"
    )


def encode_message(body: bytes, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(body).decode("ascii")
    return body.decode("utf-8")


def decode_message(content: str, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as exc:
            raise ValueError("queue message is not base64 (host.json messageEncoding)") from exc
    return content.encode("utf-8")


def output_bodies(value: Any) -> list[bytes]:
    """Message bodies from what a function gave a queue output: str, bytes, QueueMessage, or a
    list of those (the types the Python worker accepts)."""
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func_abc.QueueMessage):
        return [value.get_body()]
    if isinstance(value, list | tuple):
        return [body for item in value for body in output_bodies(item)]
    raise TypeError(f"a queue output takes str, bytes or a list of them, not {type(value)}")


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    if "opentelemetry.context" not in sys.modules:  # telemetry off: nothing to keep out
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def ensure_queue(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError), untraced():
        client.create_queue(**HOST_CALL)


class Queues:
    """Queue clients by connection and name; the host creates queues it writes to, and tells
    its own listeners when it added a message so they poll at once (as the real host does)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._lock = threading.Lock()
        self._wakeups: dict[str, list[threading.Event]] = {}

    def client(self, connection: str | None, queue: str) -> QueueClient:
        key = (connection_string(connection), queue)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            # Few retries: locally a storage error is a stopped Azurite, and the listeners
            # back off on their own.
            client = QueueClient.from_connection_string(key[0], queue, retry_total=2)
            ensure_queue(client)  # outside the lock: it is a network call
            with self._lock:
                client = self._clients.setdefault(key, client)
        return client

    def send(self, connection: str | None, queue: str, value: Any) -> None:
        client = self.client(connection, queue)
        for body in output_bodies(value):
            client.send_message(encode_message(body, self.encoding))
        self.wake(queue)

    def watch(self, queue: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._wakeups.setdefault(queue, []).append(event)
        return event

    def wake(self, queue: str | None = None) -> None:
        with self._lock:
            events = [e for q, es in self._wakeups.items() if queue in (None, q) for e in es]
        for event in events:
            event.set()


class QueueListener:
    """Polls one queue for one function with the real host's rules: batches of batchSize,
    delete on success, release after visibilityTimeout on failure, and once a failed message
    has been dequeued maxDequeueCount times, copy it unchanged to `<queue>-poison`."""

    def __init__(
        self, fn: FunctionInfo, invoker: Invoker, options: QueueOptions, stopping: threading.Event
    ) -> None:
        self.fn = fn
        self.invoker = invoker
        self.options = options
        self.stopping = stopping
        self.queues = invoker.queues
        self.connection = binding_attr(fn.trigger, "connection")
        self.queue_name = resolve_setting_expressions(
            binding_attr(fn.trigger, "queue_name", "queueName")
        )
        connection_string(self.connection)  # fail at start-up, not in the polling thread
        self.wakeup = self.queues.watch(self.queue_name)
        self.last_error: str | None = None
        self.pool = ThreadPoolExecutor(options.batch_size, thread_name_prefix=f"queue-{fn.name}")
        self.thread = threading.Thread(target=self.run, name=f"queue-{fn.name}", daemon=True)

    def run(self) -> None:
        delay = MIN_POLL_SECONDS
        while not self.stopping.is_set():
            found = self.poll_once()
            delay = MIN_POLL_SECONDS if found else min(delay * 2, self.options.max_polling_interval)
            if not found and self.wakeup.wait(delay):
                self.wakeup.clear()
                delay = MIN_POLL_SECONDS
        self.pool.shutdown(wait=False, cancel_futures=True)

    def poll_once(self) -> bool:
        """Fetch one batch and process it; True when there were messages."""
        try:
            client = self.queues.client(self.connection, self.queue_name)
            messages = self.receive(client)
        except Exception as exc:
            self.report(exc)
            return False
        self.last_error = None
        list(self.pool.map(lambda m: self.process(client, m), messages))
        return bool(messages)

    def receive(self, client: QueueClient) -> list[Any]:
        try:
            with untraced():
                return list(
                    client.receive_messages(
                        messages_per_page=self.options.batch_size,
                        max_messages=self.options.batch_size,
                        visibility_timeout=PROCESSING_VISIBILITY_SECONDS,
                        **HOST_CALL,
                    )
                )
        except ResourceNotFoundError:  # the queue was deleted behind our back: make it again
            ensure_queue(client)
            return []

    def report(self, exc: Exception) -> None:
        """Warn once per distinct error, not on every poll while Azurite is down."""
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if text != self.last_error:
            log.warning("polling queue '%s' failed: %s", self.queue_name, text)
        self.last_error = text

    def process(self, client: QueueClient, message: Any) -> None:
        try:
            if message.dequeue_count > self.options.max_dequeue_count:
                self.poison(client, message)  # a host died while it held the message
                return
            succeeded = self.invoke(message)
            if succeeded:
                self.delete(client, message)
            elif message.dequeue_count >= self.options.max_dequeue_count:
                self.poison(client, message)
            else:
                self.release(client, message)
        except Exception:
            log.exception("handling message %s from '%s' failed", message.id, self.queue_name)

    def invoke(self, message: Any) -> bool:
        """Run the function on one message; False when it failed (and was logged)."""
        try:
            body = decode_message(message.content, self.options.message_encoding)
        except ValueError as exc:  # counts as a failed run, so it ends in the poison queue
            log.error("message %s on '%s': %s", message.id, self.queue_name, exc)
            return False
        try:
            self.invoker.invoke(self.fn, to_queue_message(message, body), "New queue message")
        except Exception:  # the invoker logged the traceback
            return False
        return True

    def delete(self, client: QueueClient, message: Any) -> None:
        with message_may_be_gone(), untraced():
            client.delete_message(message.id, message.pop_receipt, **HOST_CALL)

    def release(self, client: QueueClient, message: Any) -> None:
        with message_may_be_gone(), untraced():
            client.update_message(
                message.id,
                message.pop_receipt,
                visibility_timeout=round(self.options.visibility_timeout),
                **HOST_CALL,
            )

    def poison(self, client: QueueClient, message: Any) -> None:
        poison_name = f"{self.queue_name}-poison"
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self.options.max_dequeue_count,
            poison_name,
        )
        # The stored text, still encoded, so the poison message reads exactly as the original.
        with untraced():
            poison = self.queues.client(self.connection, poison_name)
            poison.send_message(message.content, **HOST_CALL)
        self.delete(client, message)


@contextlib.contextmanager
def message_may_be_gone() -> Iterator[None]:
    """Like the real host, shrug when the message or queue is gone (404), someone else took
    the message over (400, pop receipt mismatch) or the queue is being deleted (409)."""
    try:
        yield
    except HttpResponseError as exc:
        if exc.status_code not in (400, 404, 409):
            raise


def to_queue_message(message: Any, body: bytes) -> QueueMessage:
    return QueueMessage(
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )
