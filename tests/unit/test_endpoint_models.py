"""Endpoint request models: what the config API refuses before anything is stored."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lib.endpoints.models import LaunchOptions


@pytest.mark.parametrize(
    "origin",
    [
        "https://ehr.example.org *",
        "*",
        "https://*.example.org",
        "https://ehr.example.org; script-src *",
        "https://ehr.example.org\r\nX-Injected: 1",
        "'self'",
        '"https://ehr.example.org"',
        "https://ehr.example.org/",
        "https://ehr.example.org/path",
        "http://ehr.example.org",
        "https://user@ehr.example.org",
        "https://ehr.example.org:0",
        "https://ehr.example.org:99999",
        "https://ehr.example.org?x=1",
        "https://",
        "ehr.example.org",
    ],
)
def test_framing_origins_are_exactly_https_host_and_port(origin):
    with pytest.raises(ValidationError):
        LaunchOptions(ehr_origins=[origin])


def test_good_framing_origins_are_kept_lower_case():
    ok = LaunchOptions(ehr_origins=["https://PowerChart.Example.org", "https://10.2.3.4:8443"])
    assert ok.ehr_origins == ["https://powerchart.example.org", "https://10.2.3.4:8443"]
