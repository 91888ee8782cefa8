"""azure.yaml, infra/main.parameters.json, the modules and the hook agree with each other.

`azd` cannot run here (no Azure), so these check what it would trip on first: a parameter the
file names that main.bicep lacks (or a required one it does not give), defaults that differ, a
module called with parameters it does not declare, an output read that no module makes, a hook
that is not there, and secret names that differ between the Bicep and the hook.
"""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml

from tests.infra.bicep import INFRA, ROOT, BicepFile, identifiers, literal

AZURE_YAML = yaml.safe_load((ROOT / "azure.yaml").read_text())
PARAMETERS = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
MAIN = BicepFile(INFRA / "main.bicep")
AZD_VALUE = re.compile(r"^\$\{(?P<var>[A-Z][A-Z0-9_]*)(?:=(?P<default>[^}]*))?\}$")


def test_azure_yaml_points_at_main_bicep():
    infra = AZURE_YAML["infra"]
    assert infra["provider"] == "bicep"
    assert (ROOT / infra["path"] / f"{infra['module']}.bicep") == INFRA / "main.bicep"
    assert (ROOT / infra["path"] / f"{infra['module']}.parameters.json").is_file()


def test_the_service_is_the_function_app_main_bicep_tags():
    (name, service), *more = AZURE_YAML["services"].items()
    assert not more
    assert service == {"project": ".", "language": "python", "host": "function"}
    assert literal(MAIN.variables["serviceName"].value) == name
    function = BicepFile(INFRA / "app" / "function.bicep")
    site = function.resources("Microsoft.Web/sites")[0]
    assert "'azd-service-name': serviceName" in site.node.text.decode()


def test_hooks_exist_and_run():
    for event, hook in AZURE_YAML["hooks"].items():
        for platform in hook.values():
            path = ROOT / platform["run"]
            assert path.is_file() and os.access(path, os.X_OK), f"{event}: {path}"


def test_parameters_file_names_only_main_parameters_and_every_required_one():
    declared = MAIN.params
    assert set(PARAMETERS) <= set(declared), sorted(set(PARAMETERS) - set(declared))
    required = {n for n, p in declared.items() if p.value is None}
    assert required <= set(PARAMETERS), sorted(required - set(PARAMETERS))


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_values_are_azd_variables_with_the_bicep_default(name):
    match = AZD_VALUE.match(PARAMETERS[name]["value"])
    assert match, f"{name}: give ${{VARIABLE}} or ${{VARIABLE=default}}"
    default = MAIN.params[name].value
    if match["default"] is not None and default is not None:
        bicep_default = literal(default)
        as_text = (
            str(bicep_default).lower() if isinstance(bicep_default, bool) else str(bicep_default)
        )
        assert match["default"] == as_text, (
            f"{name}: {match['default']!r} vs main.bicep {as_text!r}"
        )


def test_parameter_variables_do_not_read_back_an_output():
    # azd writes outputs into the environment: a parameter fed by an output's name would
    # silently take the previous deployment's output as its input, unless the output is that
    # very parameter (AZURE_LOCATION = location: azd's own round trip).
    for name, parameter in PARAMETERS.items():
        output = MAIN.outputs.get(AZD_VALUE.match(parameter["value"])["var"])
        assert output is None or output.value.text.decode() == name, output.name


def azd_output_problems(main: BicepFile) -> list[str]:
    """The outputs azd itself reads back into the environment, with what they must be."""
    wanted = {"AZURE_LOCATION": "location", "AZURE_TENANT_ID": "tenant().tenantId"}
    problems = []
    for name, value in wanted.items():
        output = main.outputs.get(name)
        found = output.value.text.decode() if output is not None else None
        if found != value:
            problems.append(f"output {name} is {found!r}, not {value!r}")
    return problems


def test_azd_outputs_are_the_deployment_s_own():
    assert azd_output_problems(MAIN) == []


def test_a_tenant_output_from_a_parameter_is_found():
    # The connector's Entra tenant may differ from the subscription's: azd, `az` in the hooks
    # and the SDKs' EnvironmentCredential would then sign in to the wrong tenant.
    source = MAIN.source.replace(
        b"output AZURE_TENANT_ID string = tenant().tenantId",
        b"output AZURE_TENANT_ID string = entraTenantId",
    )
    assert source != MAIN.source
    assert azd_output_problems(BicepFile(MAIN.path, source)) == [
        "output AZURE_TENANT_ID is 'entraTenantId', not 'tenant().tenantId'"
    ]


def test_modules_are_called_with_the_parameters_they_declare():
    for name, module in MAIN.modules.items():
        target = BicepFile(INFRA / module.type)
        given = set(literal(module.value)["params"])
        declared = target.params
        required = {n for n, p in declared.items() if p.value is None}
        assert given <= set(declared), f"{name}: unknown {sorted(given - set(declared))}"
        assert required <= given, f"{name}: missing {sorted(required - given)}"


def test_module_outputs_read_exist():
    text = MAIN.source.decode()
    for module, output in re.findall(r"\b([A-Za-z]+)\.outputs\.([A-Za-z]+)", text):
        target = BicepFile(INFRA / MAIN.modules[module].type)
        assert output in target.outputs, f"{module}.outputs.{output}"


def test_the_hook_creates_the_secrets_main_bicep_references():
    hook = (INFRA / "hooks" / "postprovision.sh").read_text()
    names = literal(MAIN.variables["secretNames"].value)
    for key, variable in {
        "hashKey": "HASH_KEY",
        "sealingKeys": "SEALING_KEYS",
        "signingKeys": "SIGNING_KEYS",
        "entraClientSecret": "ENTRA_CLIENT_SECRET",
        "smsEventsSecret": "SMS_EVENTS_SECRET",
    }.items():
        assert re.search(rf"^{variable}={re.escape(names[key])}$", hook, re.M), key
    assert "AZURE_KEY_VAULT_NAME" in MAIN.outputs


def test_the_hook_and_the_bicep_name_ehr_secrets_alike():
    hook = (INFRA / "hooks" / "postprovision.sh").read_text()
    function = (INFRA / "app" / "function.bicep").read_text()
    assert "ehr-secret-$(printf '%s' \"$ehr\" | tr 'A-Z_' 'a-z-')" in hook
    assert "'ehr-secret-${toLower(replace(ehr, '_', '-'))}'" in function
    assert PARAMETERS["ehrSecretNames"]["value"].startswith("${EHR_SECRET_NAMES")


def test_funcignore_keeps_infra_and_dev_out_of_the_package():
    ignored = set((ROOT / ".funcignore").read_text().split())
    assert {"infra", "dev", "tests", "bench", "docs", "azure.yaml", ".azure"} <= ignored


def unused_names(file: BicepFile) -> set[str]:
    """Parameters and variables nothing reads: what Bicep's linter flags."""
    used: set[str] = set()
    for decl in file.decls:
        if decl.kind in ("param", "var"):
            used |= identifiers(decl.value) if decl.value is not None else set()
        else:
            used |= identifiers(decl.node) - {decl.name}
    return {n for n in [*file.params, *file.variables] if n not in used}


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: p.name)
def test_every_parameter_and_variable_is_used(path):
    # A parameter nobody reads is a setting that silently does nothing.
    assert unused_names(BicepFile(path)) == set()


def test_an_unused_parameter_is_found():
    source = b"param location string\nparam forgotten string\nvar alsoForgotten = 1\n" + (
        b"resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {\n"
        b"  name: 'id'\n  location: location\n}\n"
    )
    assert unused_names(BicepFile(INFRA / "x.bicep", source)) == {"forgotten", "alsoForgotten"}
