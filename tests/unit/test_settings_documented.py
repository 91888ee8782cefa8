"""Every setting is in local.settings.sample.json and documented there, so none can sneak in.

The model (lib/settings.Settings) is the source of what the app reads; the sample's `Values` hold
a working local value for each, its `Documentation` block a sentence for each. Optional settings
with no local value (identity-based storage, Azure only) are documented in `Documentation` only:
an empty entry in `Values` is worse than none.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from dev.docs import settings_markdown
from lib.endpoints.secrets import SECRET_SETTING
from lib.settings import Settings

SAMPLE = json.loads(
    (Path(__file__).resolve().parents[2] / "local.settings.sample.json").read_text()
)
VALUES: dict[str, str] = SAMPLE["Values"]
DOCS: dict[str, str] = SAMPLE["Documentation"]

# Settings that are not fields of the model, and who reads them.
NOT_IN_MODEL = {
    "FUNCTIONS_WORKER_RUNTIME": "the Functions host",
    "REQUESTS_CA_BUNDLE": "requests, msal and the Azure SDKs (locally, to trust the sandbox)",
    "AzureWebJobsStorage__credential": "the Functions host (identity-based storage)",
}
# Client secrets an endpoint names by its `secret_setting`, read with lib.settings.setting_value.
ENDPOINT_SECRET = re.compile(SECRET_SETTING)
GENERATED_BY_MAKE = {"CONNECTOR_SIGNING_KEYS", "GRAPH_NOTIFICATION_CERTIFICATE"}


def _aliases(field) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [a for a in alias.choices if isinstance(a, str)]
    assert isinstance(alias, str), f"{field}: give every field its app-setting name"
    return [alias]


MODEL = {
    alias: (name, field)
    for name, field in Settings.model_fields.items()
    for alias in _aliases(field)
}
ENDPOINT_SECRETS = sorted(n for n in VALUES if ENDPOINT_SECRET.match(n) and n not in MODEL)


def is_sentence(text: str | None) -> bool:
    return bool(text) and len(text.strip()) >= 10 and text.rstrip().endswith(".")


def test_the_model_and_the_sample_are_not_empty():
    assert len(MODEL) >= 15 and len(VALUES) >= 15 and ENDPOINT_SECRETS


@pytest.mark.parametrize("alias", sorted(MODEL))
def test_every_model_setting_is_in_the_sample_with_a_sentence(alias):
    name, field = MODEL[alias]
    assert is_sentence(DOCS.get(alias)), f"{alias} ({name}): add a sentence to Documentation"
    if alias not in VALUES:
        assert not field.is_required(), f"{alias} is required: give it a local value in Values"


def test_required_settings_have_a_working_local_value():
    required = [alias for alias, (_, field) in MODEL.items() if field.is_required()]
    assert required
    for alias in required:
        assert VALUES.get(alias), alias


def reader_of(name: str) -> str | None:
    """Who reads a sample setting; None when nothing does."""
    if name in MODEL:
        return "lib.settings.Settings"
    if name in NOT_IN_MODEL:
        return NOT_IN_MODEL[name]
    if ENDPOINT_SECRET.match(name):
        return "an endpoint's secret_setting"
    return None


@pytest.mark.parametrize("name", sorted(VALUES.keys() | DOCS.keys()))
def test_every_sample_setting_is_read_by_something_and_documented(name):
    assert is_sentence(DOCS.get(name)), f"{name}: add a sentence to Documentation"
    reader = reader_of(name)
    assert reader, f"{name} is neither a Settings field nor a known non-model setting"
    if reader == "an endpoint's secret_setting":
        assert name in VALUES, f"{name}: an endpoint secret needs its local value"
        assert "endpoint" in DOCS[name].lower(), f"{name}: say which endpoint names it"


def test_no_empty_local_values_but_the_generated_ones():
    empty = {name for name, value in VALUES.items() if not str(value).strip()}
    assert empty <= GENERATED_BY_MAKE


def test_the_readme_settings_table_lists_every_documented_setting():
    table = settings_markdown()
    rows = [line for line in table.splitlines()[2:] if line.startswith("| `")]
    listed = [row.split("`")[1] for row in rows]
    assert sorted(listed) == sorted(VALUES.keys() | DOCS.keys())
    assert len(listed) == len(set(listed))
    for row, name in zip(rows, listed, strict=True):
        if name in VALUES and name not in GENERATED_BY_MAKE:
            assert f"| `{VALUES[name]}` |" in row
        elif name not in VALUES:
            assert "| (not set locally) |" in row
        assert row.endswith(f"| {DOCS[name]} |")
