"""Every setting the code reads is set by the Bicep, or listed here as optional with a reason.

The code's settings are the model's app-setting names (lib/settings.py); the Bicep's are the keys
of the Function App's `appsettings` (infra/app/function.bicep), read from the parsed tree. When a
setting is added to the model, add its line to function.bicep (a Key Vault reference if it is a
secret) or a line to OPTIONAL_IN_AZURE below: this test names the one that is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, SecretStr

from lib.endpoints.secrets import SECRET_PREFIX
from lib.settings import Settings
from tests.infra.bicep import INFRA, ROOT, BicepFile, Expr, literal

# Settings of the model that the Bicep leaves unset on purpose. One line each, with why.
OPTIONAL_IN_AZURE = {
    "AzureWebJobsStorage": "a connection string holds the account key; in Azure the identity "
    "settings (AzureWebJobsStorage__*) are set instead and shared keys are off",
    "AzureWebJobsStorage__accountName": "the service URIs are set instead: they carry the "
    "cloud's own suffix, which the account name alone does not",
    "CONNECTOR_LOCAL_MODE": "false by default; true only on a developer machine",
    "CONNECTOR_INTERACTIVE_BUDGET_SECONDS": "10 s suits a clinician with a patient waiting",
    "CONNECTOR_BACKGROUND_BUDGET_SECONDS": "120 s fits well inside the Functions timeout",
    "CONNECTOR_BACKGROUND_STORAGE_READ_TIMEOUT_SECONDS": "20 s suits Table Storage in Azure",
    "CONNECTOR_BACKGROUND_STORAGE_RETRIES": "3 retries suit Table Storage in Azure",
    "CONNECTOR_DEMO_VISIT_DAYS": "demo visits are for the local run only; never seeded in Azure",
    "GRAPH_RECONCILE_DELAY_SECONDS": "300 s: Graph publishes attendance reports minutes later",
    "CONNECTOR_WRITEBACK_TIMEOUT_SECONDS": "10 s per EHR call suits Epic and Oracle Health",
}
# Set by the Bicep for the Functions host and its Python worker, not read through the model.
HOST_SETTINGS = {
    "AzureWebJobsStorage__credential": "the host's identity-based storage connection",
    "AzureWebJobsStorage__blobServiceUri": "the host's blobs (timer locks, deployment)",
    "PYTHON_THREADPOOL_THREAD_COUNT": "the worker's threads, one per concurrent request",
}
FUNCTION = BicepFile(INFRA / "app" / "function.bicep")


def model_settings() -> dict[str, tuple[str, ...]]:
    """Field name -> the app-setting names that set it (AliasChoices: any one of them)."""
    found = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        found[name] = tuple(c for c in choices if isinstance(c, str))
    return found


def bicep_settings(file: BicepFile = FUNCTION) -> tuple[dict[str, object], set[str]]:
    """(setting -> its value expression, name prefixes of settings made in a loop)."""
    config = next(
        d
        for d in file.resources("Microsoft.Web/sites/config")
        if literal(d.value)["name"] == "appsettings"
    )
    settings: dict[str, object] = {}
    prefixes: set[str] = set()
    _collect(literal(config.value)["properties"], file, settings, prefixes)
    return settings, prefixes


def _collect(value, file: BicepFile, settings: dict, prefixes: set) -> None:
    if isinstance(value, dict):
        settings.update(value)
        return
    assert isinstance(value, Expr), f"cannot read app settings from {value!r}"
    node = value.node
    if node.type == "identifier":
        _collect(literal(file.variables[value.text].value), file, settings, prefixes)
    elif node.type == "ternary_expression":
        for branch in ("consequence", "alternative"):
            _collect(literal(node.child_by_field_name(branch)), file, settings, prefixes)
    elif node.type == "call_expression" and node.child_by_field_name("function").text == b"union":
        for arg in node.child_by_field_name("arguments").named_children:
            _collect(literal(arg), file, settings, prefixes)
    elif (
        node.type == "call_expression" and node.child_by_field_name("function").text == b"toObject"
    ):
        key_lambda = node.child_by_field_name("arguments").named_children[1]
        key = key_lambda.named_children[-1]
        assert key.type == "string", f"cannot read setting names from {key.text!r}"
        prefixes.add(key.named_children[0].text.decode())
    else:
        raise AssertionError(f"cannot read app settings from {value.text[:80]!r}")


def compare(model: dict[str, tuple[str, ...]], bicep: set[str], prefixes: set[str]) -> list[str]:
    problems = []
    known = {a for aliases in model.values() for a in aliases}
    for field, aliases in model.items():
        set_here = [a for a in aliases if a in bicep]
        optional = [a for a in aliases if a in OPTIONAL_IN_AZURE]
        if not set_here and not optional:
            problems.append(f"{'/'.join(aliases)} ({field}) is neither set by infra/ nor optional")
        if set_here and optional:
            problems.append(f"{optional[0]} is set by infra/: drop it from OPTIONAL_IN_AZURE")
    for name in sorted(bicep - known - HOST_SETTINGS.keys()):
        problems.append(f"infra/ sets {name}, which neither the model nor the host reads")
    for name in sorted(HOST_SETTINGS.keys() & known):
        problems.append(f"HOST_SETTINGS lists {name}, which the model reads: drop it there")
    for name in sorted(OPTIONAL_IN_AZURE.keys() - known):
        problems.append(f"OPTIONAL_IN_AZURE lists {name}, which the model no longer reads")
    for prefix in sorted(prefixes - {SECRET_PREFIX}):
        problems.append(f"infra/ makes settings named {prefix}*, which nothing reads")
    return problems


def test_every_setting_is_set_or_optional():
    settings, prefixes = bicep_settings()
    assert len(settings) >= 15
    assert compare(model_settings(), set(settings), prefixes) == []


def test_the_comparison_names_what_is_missing_and_what_is_extra():
    settings, prefixes = bicep_settings()
    model = {**model_settings(), "sms_number": ("SMS_FROM_NUMBER",)}
    extra = set(settings) | {"LEFTOVER_SETTING"}
    problems = compare(model, extra, prefixes | {"OLD_SECRET_"})
    assert problems == [
        "SMS_FROM_NUMBER (sms_number) is neither set by infra/ nor optional",
        "infra/ sets LEFTOVER_SETTING, which neither the model nor the host reads",
        "infra/ makes settings named OLD_SECRET_*, which nothing reads",
    ]


def test_secrets_are_key_vault_references():
    settings, _ = bicep_settings()
    secret_fields = [n for n, f in Settings.model_fields.items() if _is_secret(f.annotation)]
    assert "hash_key" in secret_fields and "sealing_keys" in secret_fields
    for field in secret_fields:
        for alias in model_settings()[field]:
            value = settings.get(alias)
            if value is None:
                continue
            assert isinstance(value, Expr) and value.text.startswith("keyVaultReference("), alias


def test_ehr_secrets_are_key_vault_references():
    _, prefixes = bicep_settings()
    assert prefixes == {SECRET_PREFIX}
    assert "keyVaultReference(" in FUNCTION.variables["ehrSecretSettings"].value.text.decode()


def test_storage_is_identity_based():
    settings, _ = bicep_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage" not in settings
    for name in ("clientId", "blobServiceUri", "queueServiceUri", "tableServiceUri"):
        assert isinstance(settings[f"AzureWebJobsStorage__{name}"], Expr), name
    assert "Authorization=AAD" in settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].text


def test_no_setting_flex_consumption_refuses():
    settings, _ = bicep_settings()
    refused = {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
    }
    assert not refused & set(settings)


def _is_secret(annotation) -> bool:
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


# infra/app/function.bicep declares the app settings as one `appsettings` resource, which
# Resource Manager PUTs whole: a setting made by hand is deleted by the next `azd provision`.
HAND_SET = re.compile(r"az (functionapp|webapp) config appsettings (set|delete)")


def hand_set_settings(docs: list[Path]) -> list[str]:
    return [
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{number}"
        for path in docs
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HAND_SET.search(line)
    ]


def test_no_doc_sets_an_app_setting_by_hand():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert hand_set_settings(docs) == [], "give it a parameter in infra/ instead"


def test_a_hand_set_setting_in_a_doc_is_found(tmp_path: Path):
    doc = tmp_path / "guide.md"
    doc.write_text("Then:\n\n    az functionapp config appsettings set -n app --settings X=1\n")
    assert hand_set_settings([doc]) == ["guide.md:3"]


def test_the_graph_certificate_is_a_key_vault_reference_when_named():
    settings, _ = bicep_settings()
    value = settings["GRAPH_NOTIFICATION_CERTIFICATE"]
    assert isinstance(value, Expr) and value.text.startswith("keyVaultReference(")
    assert "graphNotificationCertificateName" in value.text
