"""Settings: a missing or malformed one stops the app with one line that names it."""

from __future__ import annotations

import pytest

from dev.stack import settings_env
from lib.settings import SettingsError, load_settings


def test_a_complete_environment_loads():
    s = load_settings(settings_env())
    assert s.public_url == "http://127.0.0.1:7071" and s.local_mode is True
    assert s.entra_issuer.endswith("/v2.0") and s.join_hosts == frozenset({"teams.microsoft.com"})


@pytest.mark.parametrize("name", ["CONNECTOR_PUBLIC_URL", "CONNECTOR_HASH_KEY", "ENTRA_TENANT_ID"])
def test_missing_setting_is_named(name):
    env = settings_env()
    del env[name]
    with pytest.raises(SettingsError) as exc:
        load_settings(env)
    message = str(exc.value)
    assert name in message and "missing" in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONNECTOR_PUBLIC_URL", "not-a-url"),
        ("CONNECTOR_HASH_KEY", "too-short"),
        ("CONNECTOR_LOCAL_MODE", "perhaps"),
        ("CONNECTOR_LOG_LEVEL", "LOUD"),
        ("GRAPH_BASE_URL", "ftp://graph"),
    ],
)
def test_malformed_setting_is_named_without_its_value(name, value):
    with pytest.raises(SettingsError) as exc:
        load_settings(settings_env(**{name: value}))
    message = str(exc.value)
    assert name in message and "invalid" in message and "\n" not in message
    assert value not in message  # a value may be a secret: never echoed


def test_storage_needs_a_connection_or_an_identity():
    env = settings_env()
    del env["AzureWebJobsStorage"]
    with pytest.raises(SettingsError) as exc:
        load_settings(env)
    assert "AzureWebJobsStorage" in str(exc.value)
    identity = load_settings({**env, "AzureWebJobsStorage__accountName": "evcstore"})
    assert identity.storage_account_name == "evcstore"


def test_api_audience_falls_back_to_the_client_id():
    env = settings_env()
    del env["ENTRA_API_AUDIENCE"]
    assert load_settings(env).entra_api_audience == env["ENTRA_CLIENT_ID"]
