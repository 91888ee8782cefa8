"""Every .bicep file parses, and the modules declare what a hospital's security review asks for.

The parser is the tree-sitter Bicep grammar (tests/infra/bicep.py says why not the Bicep CLI).
Each check is shown to fail on a deliberately wrong fixture, so a pass means something.
"""

from __future__ import annotations

import pytest

from tests.infra import checks
from tests.infra.bicep import INFRA, ROOT, BicepFile, infra_files

FIXTURES = ROOT / "tests" / "infra" / "fixtures"
FILES = infra_files()


def test_infra_has_main_and_modules():
    names = {f.name for f in FILES}
    assert "infra/main.bicep" in names and len(names) >= 8, names


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_parses_without_error_nodes(file):
    assert file.errors() == []
    assert file.decls, "nothing declared: not Bicep?"


def test_a_syntax_error_is_found():
    errors = BicepFile(FIXTURES / "broken.bicep").errors()
    assert errors and all(e.startswith("tests/infra/fixtures/broken.bicep:") for e in errors)


def test_a_stray_character_is_found():
    good = (INFRA / "app" / "identity.bicep").read_bytes()
    broken = good.replace(b"name: name", b"name: name )", 1)
    assert broken != good
    assert BicepFile(INFRA / "app" / "identity.bicep", broken).errors()


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda c: c.__name__)
def test_infra_passes(check):
    assert check(FILES) == []


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda c: c.__name__)
def test_each_check_fails_on_the_insecure_fixture(check):
    assert check([BicepFile(FIXTURES / "insecure.bicep")]), f"{check.__name__} saw nothing"


def test_the_fixture_problems_are_the_ones_planted():
    problems = "\n".join(checks.run_all([BicepFile(FIXTURES / "insecure.bicep")]))
    for planted in [
        "storage: properties.allowSharedKeyAccess is True",
        "storage: properties.minimumTlsVersion is 'TLS1_0'",
        "storage: properties.publicNetworkAccess is 'Enabled', not a parameter",
        "site: properties.httpsOnly is False",
        "site: properties.siteConfig.ftpsState is not for Flex Consumption (FTPS not supported",
        "site: properties.functionAppConfig.runtime.version is '3.9'",
        "site: identity.type is 'SystemAssigned'",
        "no Microsoft.Web/serverfarms is declared",
        "vault: properties.enableRbacAuthorization is False",
        "vault: no diagnostic setting sends its audit log anywhere",
        "basic publishing credentials for ftp are not turned off",
        "site: alwaysReady is not the http group by parameter",
        "insecure.bicep calls getSecret(), but no vault allows template deployment",
        "grant: name is not guid(scope, principal, role)",
        "role b7e6dc6d-f1e8-4753-8033-0f276bb0955d is not a reviewed built-in role",
        "param clientSecret: looks secret but is not @secure()",
        "param adminPassword: a @secure() parameter has a default",
        "param signingKeyDefault: its default looks like key material",
        "output storageKey: calls ['listKeys']",
        "output adminPasswordOut: returns a @secure() parameter",
    ]:
        assert planted in problems, planted


def replaced(path, old: bytes, new: bytes) -> list[BicepFile]:
    """The infra files with one of them changed in memory (a fault planted in the real file)."""
    source = path.read_bytes()
    assert old in source, f"{old!r} is not in {path.name}"
    return [BicepFile(path, source.replace(old, new, 1)) if f.path == path else f for f in FILES]


def test_a_vault_closed_to_template_deployment_is_found():
    # Without it, provisioning with SMS_EVENTS_ENABLED=true fails: Resource Manager refuses to
    # resolve the events secret for the Event Grid subscription (main.bicep getSecret).
    files = replaced(
        INFRA / "app" / "keyvault.bicep",
        b"enabledForTemplateDeployment: true",
        b"enabledForTemplateDeployment: false",
    )
    assert checks.template_deployment_reads_the_vault(files) == [
        "infra/main.bicep calls getSecret(), but no vault allows template deployment"
    ]


def test_a_vault_without_its_audit_log_is_found():
    files = replaced(INFRA / "app" / "keyvault.bicep", b"categoryGroup: 'audit'", b"category: 'x'")
    assert checks.vaults_are_audited(files) == [
        "infra/app/keyvault.bicep vault: no diagnostic setting sends its audit log anywhere"
    ]
