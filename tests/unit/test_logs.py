"""The redaction filter: nothing secret or personal reaches a log line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from lib.logs import JsonFormatter, RedactionFilter, configure_logging, redact_text

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"


@pytest.fixture
def capture():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger("test.redaction.child")  # a child: proves handler-level filtering
    parent = logging.getLogger("test.redaction")
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    yield logger, stream
    parent.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("authorization: Basic dXNlcjpwYXNzd29yZDEyMw==", "dXNlcjpwYXNzd29yZDEyMw=="),
        (f"got id_token {JWT} back", JWT),
        ("GET /cb?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj", "SplxlOBeZQQYbYS6WxSbIA"),
        ("GET /cb?code=abc&state=af0ifjsldkj", "af0ifjsldkj"),
        ("launch=xyz123abc&iss=https://ehr", "xyz123abc"),
        ('{"access_token": "abcdef123456", "scope": "x"}', "abcdef123456"),
        ("client_secret=s3cr3t-value", "s3cr3t-value"),
        ("AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtl==;", "Eby8vdM02xNOcqFlqUwJPLlmEtl"),
        ("send to +14255550123 now", "+14255550123"),
        ("call (425) 555-0123 today", "555-0123"),
        ("call 425-555-0123 today", "425-555-0123"),
        ("telecom 4255550123 on file", "4255550123"),
        ("telecom 14255550123 on file", "4255550123"),
        ("PID|1||...|^PRN^PH^^1^425^5550123", "5550123"),
        ("XTN ^NET^CP^^^425^555-0123~", "555-0123"),
        ("next=%2Fcb%3Fcode%3DSplxlOBeZQQY%26state%3Daf0ifjs", "SplxlOBeZQQY"),
        ("next=%2Fcb%3Fcode%3DSplxlOBeZQQY%26state%3Daf0ifjs", "af0ifjs"),
        ("body=%7B%22access_token%22%3A%22abcdef123456%22%7D", "abcdef123456"),
        ("Authorization%3A%20Bearer%20abcdef123456789", "abcdef123456789"),
        ("key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", "MIIEvQ"),
        ("cut: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI", "MHcCAQEEI"),
    ],
)
def test_patterns_are_removed(text, secret):
    assert secret not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "visit 3f2a9c created for endpoint epic-test in 120 ms (HTTP 201)",
        "token expires at 1764576000 (epoch seconds)",
        "meeting MSo1N2Y5ZGFj created, 1200 ms, request 0123456789",
    ],
)
def test_harmless_text_is_kept(text):
    assert redact_text(text) == text


def test_message_args_extras_and_exceptions_are_redacted(capture):
    logger, stream = capture
    logger.info("token for %s is %s", "user", JWT, extra={"patient_name": "Jane Doe", "ms": 12})
    try:
        raise ValueError("bad code=LEAKED123 for +14255550123")
    except ValueError:
        logger.exception("callback failed")
    logger.warning("body", extra={"body": {"given": "Jane", "nested": {"phone": "+1425"}, "n": 1}})
    first, second, third = lines(stream)
    assert JWT not in json.dumps(first) and first["patient_name"] == "[redacted]"
    assert first["ms"] == 12
    assert "LEAKED123" not in second["exception"] and "+14255550123" not in second["exception"]
    assert "ValueError" in second["exception"]
    assert third["body"] == {"given": "[redacted]", "nested": {"phone": "[redacted]"}, "n": 1}


def test_bad_format_string_does_not_lose_the_record(capture):
    logger, stream = capture
    logger.info("two args %s %s", "only-one")
    assert "two args" in lines(stream)[0]["message"]


def test_configure_logging_filters_handlers_and_quiets_sdks():
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_logging("INFO", stream=stream)
        logging.getLogger("lib.some.module").info("Bearer %s", JWT)
        assert JWT not in stream.getvalue() and "[redacted]" in stream.getvalue()
        assert logging.getLogger("azure").level == logging.WARNING
    finally:
        for h in set(root.handlers) - set(before):
            root.removeHandler(h)
