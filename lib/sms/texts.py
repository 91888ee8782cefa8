"""The texts (F14): short, GSM-7 where possible, English and Spanish, no clinical detail and no
clinician name; the organization's name, the time in the clinic's zone formatted for the
language (babel), and the join link.

GSM-7 fits 160 characters in one segment (UCS-2 only 70), so letters outside the GSM 03.38
alphabet are folded to their base letter (á -> a, í -> i): Spanish stays readable and one
segment long. A text longer than MAX_LENGTH is refused rather than cut.
"""

from __future__ import annotations

import functools
import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

MAX_LENGTH = 320
# GSM 03.38 basic character set (plus the extension table's characters, which count double).
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€")
LOCALES = {"en": "en_US", "es": "es_US"}

_EN = {
    "booked": "{org}: video visit {when}. Join: {link} Reply STOP to opt out.",
    "moved": "{org}: your video visit moved to {when}. Join: {link}",
    "cancelled": "{org}: your video visit on {when} is cancelled. Please call us to rebook.",
    "reminder": "{org}: reminder, video visit {when}. Join: {link}",
    "on-demand": "{org}: join your video visit here: {link}",
    "help": "{org}: texts about your video visits. Reply STOP to opt out, START to opt in.",
    "stopped": "{org}: you will get no more texts from us. Reply START to opt back in.",
}
# Spanish (US): "-" rather than "." after the time, which ends in "a.m." / "p.m.".
_ES = {
    "booked": "{org}: videoconsulta el {when} - entre: {link} Responda STOP para no recibir mas",
    "moved": "{org}: su videoconsulta cambio al {when} - entre: {link}",
    "cancelled": "{org}: su videoconsulta del {when} esta cancelada. Llamenos para otra cita.",
    "reminder": "{org}: recordatorio, videoconsulta el {when} - entre: {link}",
    "on-demand": "{org}: entre a su videoconsulta aqui: {link}",
    "help": "{org}: mensajes sobre sus videoconsultas. Responda STOP para no recibir mas.",
    "stopped": "{org}: no recibira mas mensajes. Responda START para recibirlos otra vez.",
}
TEMPLATES = {"en": _EN, "es": _ES}


class TextTooLong(ValueError):
    pass


def when(moment: datetime, zone: str, language: str) -> str:
    """e.g. "Wed 2 Dec at 9:30 AM" / "mie 2 dic a las 9:30", in the clinic's zone."""
    from babel.dates import format_datetime, format_time

    tz = ZoneInfo(zone)
    locale = LOCALES[language]
    day = format_datetime(moment, "EEE d MMM", tzinfo=tz, locale=locale)
    clock = format_time(moment, "short", tzinfo=tz, locale=locale)
    return f"{day} {'at' if language == 'en' else 'a las'} {clock}"


def render(kind: str, language: str, org: str, moment: datetime | None, zone: str,
           link: str = "") -> str:  # fmt: skip
    template = TEMPLATES[language][kind]
    text = template.format(org=org, when=when(moment, zone, language) if moment else "", link=link)
    text = to_gsm7(text)
    if len(text) > MAX_LENGTH:
        raise TextTooLong(f"{kind} text is {len(text)} characters")
    return text


def to_gsm7(text: str) -> str:
    """Fold characters outside GSM-7 to their base letter; keep those with none (rare)."""
    return "".join(_fold(ch) for ch in text)


@functools.cache
def _fold(ch: str) -> str:
    if ch in GSM7 or ch in GSM7_EXTENDED:
        return ch
    if ch in ("\u00a0", "\u202f", "\u2009"):  # babel's narrow spaces before a.m. / AM
        return " "
    base = unicodedata.normalize("NFD", ch)[0]
    return base if base in GSM7 else ch


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7 or ch in GSM7_EXTENDED for ch in text)


def segments(text: str) -> int:
    """How many SMS segments the text takes (concatenated: 153 GSM-7 / 67 UCS-2 each)."""
    if is_gsm7(text):
        units = len(text) + sum(1 for ch in text if ch in GSM7_EXTENDED)
        return 1 if units <= 160 else -(-units // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)
