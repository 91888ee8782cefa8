"""Queue sender whose messages the Functions host can read (base64 bodies, as host.json says)."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

from lib.storage.tables import StorageUnavailable

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueServiceClient

MAX_MESSAGE_BYTES = 48 * 1024  # 64 KiB after base64; keep a margin


class QueueSender:
    """Sends JSON or text messages to one queue, creating it once per process.

    Visit events (lib/visits/timeline.py) go on the `visit-events` queue through it.
    """

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        self._service = service
        self.name = name
        self._client: QueueClient | None = None
        self._lock = threading.Lock()

    def _queue(self) -> QueueClient:
        if self._client is None:
            from azure.core.exceptions import ResourceExistsError
            from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

            with self._lock:
                if self._client is None:
                    client = self._service.get_queue_client(
                        self.name,
                        message_encode_policy=TextBase64EncodePolicy(),
                        message_decode_policy=TextBase64DecodePolicy(),
                    )
                    with contextlib.suppress(ResourceExistsError):
                        client.create_queue()
                    self._client = client
        return self._client

    def ready(self) -> None:
        """Open (and create) the queue now, so the first send is one round trip (warmup)."""
        self._queue()

    def send(self, message: str | dict[str, Any], *, delay_seconds: int | None = None) -> str:
        """Durably enqueue; returns the message id. `delay_seconds` hides it until then."""
        from azure.core.exceptions import AzureError

        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise ValueError(f"queue message of {len(text.encode())} bytes is too large")
        try:
            sent = self._queue().send_message(text, visibility_timeout=delay_seconds)
        except AzureError as exc:
            raise StorageUnavailable(f"queue {self.name}: {type(exc).__name__}") from exc
        return sent.id


class QueueReader:
    """Takes messages off one queue to move them elsewhere (the poison sweeps): each message is
    handed over, then deleted only when the handler returned (a crash leaves it for next time)."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        self._service = service
        self.name = name

    def drain(self, handle: Any, *, limit: int = 200, visibility_seconds: int = 60) -> int:
        """Call `handle(message_id, text, dequeue_count)` for up to `limit` messages."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = self._service.get_queue_client(self.name)
        done = 0
        try:
            while done < limit:
                batch = list(
                    client.receive_messages(
                        messages_per_page=min(32, limit - done),
                        visibility_timeout=visibility_seconds,
                        max_messages=min(32, limit - done),
                    )
                )
                if not batch:
                    break
                for message in batch:
                    handle(message.id, _text(message.content), message.dequeue_count or 0)
                    client.delete_message(message)
                    done += 1
        except ResourceNotFoundError:
            return done  # no poison queue yet: nothing was ever set aside
        except AzureError as exc:
            raise StorageUnavailable(f"queue {self.name}: {type(exc).__name__}") from exc
        return done


def _text(content: Any) -> str:
    """A poison message as text, whether it was base64 (as the host writes) or not."""
    import base64
    import binascii

    raw = content if isinstance(content, bytes) else str(content).encode()
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")
