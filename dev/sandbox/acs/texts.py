"""What the SMS service holds: the texts sent and received, repeatability, carrier opt-outs.

Thread-safe; the stand-in (``standin.py``) speaks HTTP around it and the phone page reads it.
A phone here is an E.164 number; a "conversation" is every text between one of the resource's
numbers and one phone, oldest first, as a phone's messages app shows it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# Carrier keywords on US toll-free numbers (CTIA): the carrier blocks or unblocks the pair and
# the service still hands the text to the app as SMSReceived.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP"})
BLOCKED_MESSAGE = "Message sending failed. Sender blocked for given recipient."
# Repeatable requests (OASIS): a request id is remembered this long; a repeat inside the window
# gets the first answer again and is not sent twice.
REPEATABILITY_WINDOW_S = 24 * 3600


@dataclass
class Text:
    id: str
    direction: str  # outbound (the app sent it) | inbound (the phone replied)
    sender: str
    recipient: str
    message: str
    at: float
    tag: str | None = None
    delivery_report: bool = False
    repeatability_request_id: str | None = None
    repeatability_first_sent: str | None = None
    status: str = "accepted"  # accepted | delivered | failed | received
    status_details: str = ""

    @property
    def phone(self) -> str:
        """The patient's side of the conversation."""
        return self.recipient if self.direction == "outbound" else self.sender

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = iso(self.at)
        return data


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def message_id(direction: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"{'Outgoing' if direction == 'outbound' else 'Incoming'}_{stamp}{uuid.uuid4()}_noam"


@dataclass
class SendOutcome:
    """One recipient's line of the 202 answer."""

    to: str
    message_id: str | None
    http_status_code: int
    successful: bool
    repeatability_result: str | None = None
    error_message: str | None = None
    text: Text | None = None  # None when nothing new was sent (blocked, or a repeat)

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "to": self.to,
            "httpStatusCode": self.http_status_code,
            "successful": self.successful,
        }
        if self.message_id:
            item["messageId"] = self.message_id
        if self.repeatability_result:
            item["repeatabilityResult"] = self.repeatability_result
        if self.error_message:
            item["errorMessage"] = self.error_message
        return item


@dataclass
class TextStore:
    texts: list[Text] = field(default_factory=list)
    blocked: set[tuple[str, str]] = field(default_factory=set)  # (our number, phone)
    forced_blocked: set[str] = field(default_factory=set)  # phones "blocked" by a control
    undeliverable: set[str] = field(default_factory=set)  # phones whose reports say Failed
    repeats: int = 0  # sends answered from the repeatability memory (not sent again)
    listeners: list[Callable[[Text], None]] = field(default_factory=list)
    _by_request_id: dict[str, tuple[float, SendOutcome]] = field(default_factory=dict)
    _sent_at: dict[str, deque[float]] = field(default_factory=dict)  # our number -> send times
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- sending --------------------------------------------------------------------------------
    def send(
        self, sender: str, recipient: dict[str, Any], message: str, options: dict[str, Any]
    ) -> SendOutcome:
        to = str(recipient.get("to") or "")
        request_id = recipient.get("repeatabilityRequestId")
        with self._lock:
            now = time.time()
            if request_id:
                remembered = self._by_request_id.get(request_id)
                if remembered and now - remembered[0] < REPEATABILITY_WINDOW_S:
                    self.repeats += 1
                    first = remembered[1]
                    return SendOutcome(
                        first.to,
                        first.message_id,
                        first.http_status_code,
                        first.successful,
                        "accepted",
                        first.error_message,
                    )
            outcome = self._send_locked(sender, to, message, options, recipient, now)
            if request_id:
                self._by_request_id[request_id] = (now, outcome)
        if outcome.text is not None:
            self._notify(outcome.text)
        return outcome

    def _send_locked(
        self,
        sender: str,
        to: str,
        message: str,
        options: dict[str, Any],
        recipient: dict[str, Any],
        now: float,
    ) -> SendOutcome:
        request_id = recipient.get("repeatabilityRequestId")
        repeat = "accepted" if request_id else None
        if (sender, to) in self.blocked or to in self.forced_blocked:
            return SendOutcome(to, message_id("outbound"), 400, False, repeat, BLOCKED_MESSAGE)
        text = Text(
            id=message_id("outbound"),
            direction="outbound",
            sender=sender,
            recipient=to,
            message=message,
            at=now,
            tag=options.get("tag"),
            delivery_report=bool(options.get("enableDeliveryReport")),
            repeatability_request_id=request_id,
            repeatability_first_sent=recipient.get("repeatabilityFirstSent"),
        )
        self.texts.append(text)
        self._sent_at.setdefault(sender, deque()).append(now)
        return SendOutcome(to, text.id, 202, True, repeat, text=text)

    def rate_wait(self, sender: str, per_minute: int) -> int:
        """Seconds until ``sender`` may send again (0: now): the number's messages per minute."""
        with self._lock:
            window = self._sent_at.setdefault(sender, deque())
            now = time.time()
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) < per_minute:
                return 0
            return max(1, int(60 - (now - window[0])) + 1)

    # -- the phone's side -----------------------------------------------------------------------
    def receive(self, phone: str, our_number: str, message: str) -> Text:
        """The phone texts our number; carrier keywords block or unblock the pair."""
        word = message.strip().upper()
        text = Text(
            message_id("inbound"),
            "inbound",
            phone,
            our_number,
            message,
            time.time(),
            status="received",
        )
        with self._lock:
            self.texts.append(text)
            if word in STOP_WORDS:
                self.blocked.add((our_number, phone))
            elif word in START_WORDS:
                self.blocked.discard((our_number, phone))
        self._notify(text)
        return text

    def set_status(self, text_id: str, status: str, details: str) -> None:
        with self._lock:
            for text in self.texts:
                if text.id == text_id:
                    text.status, text.status_details = status, details

    # -- reading --------------------------------------------------------------------------------
    def snapshot(self) -> list[Text]:
        with self._lock:
            return list(self.texts)

    def to(self, phone: str) -> list[Text]:
        """Texts our numbers sent to ``phone``, oldest first."""
        return [t for t in self.snapshot() if t.direction == "outbound" and t.recipient == phone]

    def conversation(self, phone: str) -> list[Text]:
        return [t for t in self.snapshot() if t.phone == phone]

    def phones(self) -> list[str]:
        return sorted({t.phone for t in self.snapshot()})

    def last_sender(self, phone: str) -> str | None:
        """The number a reply from ``phone`` goes to: the last one that texted it."""
        sent = self.to(phone)
        return sent[-1].sender if sent else None

    def _notify(self, text: Text) -> None:
        for listener in list(self.listeners):
            listener(text)

    def reset(self) -> None:
        with self._lock:
            self.texts.clear()
            self.blocked.clear()
            self.forced_blocked.clear()
            self.undeliverable.clear()
            self._by_request_id.clear()
            self._sent_at.clear()
            self.repeats = 0
