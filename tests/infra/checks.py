"""What the infrastructure must declare, as checks that return problems (empty: all well).

Each check reads parsed Bicep (tests/infra/bicep.py) and names the file, resource and property
it found wanting, so the same function passes on infra/ and fails on tests/infra/fixtures/.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from tests.infra.bicep import BicepFile, Decl, Expr, body, calls, identifiers, is_param_ref, prop

Check = Callable[[list[BicepFile]], list[str]]

# resource type -> (property path, the value it must have). PARAM: must be one of the file's
# parameters (so each deployment decides, e.g. public network access).
PARAM = object()
REQUIRED: dict[str, list[tuple[str, Any]]] = {
    "Microsoft.Storage/storageAccounts": [
        ("properties.allowSharedKeyAccess", False),
        ("properties.allowBlobPublicAccess", False),
        ("properties.minimumTlsVersion", "TLS1_2"),
        ("properties.supportsHttpsTrafficOnly", True),
        ("properties.defaultToOAuthAuthentication", True),
        ("properties.publicNetworkAccess", PARAM),
    ],
    "Microsoft.Web/sites": [
        ("properties.httpsOnly", True),
        ("properties.siteConfig.minTlsVersion", "1.2"),
        ("properties.siteConfig.scmMinTlsVersion", "1.2"),
        ("properties.publicNetworkAccess", PARAM),
        ("identity.type", "UserAssigned"),
        ("properties.keyVaultReferenceIdentity", PARAM),
        ("properties.functionAppConfig.runtime.name", "python"),
        ("properties.functionAppConfig.runtime.version", "3.11"),
        ("properties.functionAppConfig.scaleAndConcurrency.maximumInstanceCount", PARAM),
        (
            "properties.functionAppConfig.scaleAndConcurrency.triggers.http.perInstanceConcurrency",
            PARAM,
        ),
        (
            "properties.functionAppConfig.deployment.storage.authentication.type",
            "UserAssignedIdentity",
        ),
    ],
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": [("properties.allow", False)],
    "Microsoft.KeyVault/vaults": [
        ("properties.enableRbacAuthorization", True),
        ("properties.enableSoftDelete", True),
        ("properties.publicNetworkAccess", PARAM),
    ],
    "Microsoft.Insights/components": [("properties.DisableLocalAuth", True)],
    "Microsoft.OperationalInsights/workspaces": [("properties.features.disableLocalAuth", True)],
    "Microsoft.Web/serverfarms": [
        ("sku.tier", "FlexConsumption"),
        ("sku.name", "FC1"),
        ("properties.zoneRedundant", PARAM),
    ],
}
# Resources that must exist somewhere in infra/ (a check over an empty tree must not pass).
MUST_EXIST = [
    *REQUIRED,
    "Microsoft.ManagedIdentity/userAssignedIdentities",
    "Microsoft.Communication/communicationServices",
    "Microsoft.EventGrid/systemTopics",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions",
    "Microsoft.Authorization/roleAssignments",
    "Microsoft.Insights/diagnosticSettings",
]


def _each(files: Iterable[BicepFile], type_name: str) -> Iterable[tuple[BicepFile, Decl]]:
    for file in files:
        for decl in file.resources(type_name):
            yield file, decl


def declared_properties(files: list[BicepFile]) -> list[str]:
    problems = []
    for type_name, wanted in REQUIRED.items():
        for file, decl in _each(files, type_name):
            values = body(decl)
            for path, expected in wanted:
                found = prop(values, path)
                ok = is_param_ref(found, file) if expected is PARAM else found == expected
                if not ok:
                    want = "a parameter" if expected is PARAM else repr(expected)
                    problems.append(f"{file.name} {decl.name}: {path} is {found!r}, not {want}")
    return problems


def required_resources(files: list[BicepFile]) -> list[str]:
    present = {str(d.type).split("@")[0] for f in files for d in f.resources()}
    return [f"no {t} is declared" for t in MUST_EXIST if t not in present]


def publishing_credentials_off(files: list[BicepFile]) -> list[str]:
    names = {
        body(d).get("name")
        for _, d in _each(files, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    return [
        f"basic publishing credentials for {n} are not turned off" for n in {"ftp", "scm"} - names
    ]


def always_ready_http(files: list[BicepFile]) -> list[str]:
    problems = []
    for file, decl in _each(files, "Microsoft.Web/sites"):
        ready = prop(body(decl), "properties.functionAppConfig.scaleAndConcurrency.alwaysReady")
        text = ready.text if isinstance(ready, Expr) else repr(ready)
        if "'http'" not in text or not any(p in text for p in file.params):
            problems.append(
                f"{file.name} {decl.name}: alwaysReady is not the http group by parameter"
            )
    return problems


def template_deployment_reads_the_vault(files: list[BicepFile]) -> list[str]:
    """getSecret() is a Key Vault reference that Resource Manager resolves at deployment, and
    only from a vault with enabledForTemplateDeployment: without it the deployment fails."""
    users = [f.name for f in files if "getSecret" in calls(f.tree.root_node)]
    if not users:
        return []
    allowing = [
        d
        for _, d in _each(files, "Microsoft.KeyVault/vaults")
        if prop(body(d), "properties.enabledForTemplateDeployment") is True
    ]
    if allowing:
        return []
    return [f"{', '.join(users)} calls getSecret(), but no vault allows template deployment"]


def vaults_are_audited(files: list[BicepFile]) -> list[str]:
    """Each vault sends its audit log (who read which secret) to Log Analytics."""
    audited = set()
    for _, setting in _each(files, "Microsoft.Insights/diagnosticSettings"):
        values = body(setting)
        scope = values.get("scope")
        logs = prop(values, "properties.logs")
        groups = {
            (log.get("categoryGroup") or log.get("category"))
            for log in (logs if isinstance(logs, list) else [])
            if isinstance(log, dict) and log.get("enabled") is True
        }
        if isinstance(scope, Expr) and groups & {"audit", "allLogs", "AuditEvent"}:
            audited.add(scope.text)
    return [
        f"{file.name} {vault.name}: no diagnostic setting sends its audit log anywhere"
        for file, vault in _each(files, "Microsoft.KeyVault/vaults")
        if vault.name not in audited
    ]


# Site properties the Flex Consumption plan does not take ("Flex Consumption plan deprecations"
# in the Functions app settings reference): each has moved to functionAppConfig or has no
# meaning there, and Resource Manager may refuse the site that carries one.
FLEX_REFUSED = {
    "ftpsState": "FTPS not supported; FTP is off by basicPublishingCredentialsPolicies ftp",
    "use32BitWorkerProcess": "32-bit not supported",
    "alwaysOn": "not valid: use always-ready instances",
    "isXenon": "not valid",
    "windowsFxVersion": "not valid",
    "linuxFxVersion": "functionAppConfig.runtime",
    "javaVersion": "functionAppConfig.runtime.version",
    "powerShellVersion": "functionAppConfig.runtime.version",
    "netFrameworkVersion": "functionAppConfig.runtime.version",
    "preWarmedInstanceCount": "functionAppConfig.scaleAndConcurrency.alwaysReady",
    "functionAppScaleLimit": "functionAppConfig.scaleAndConcurrency.maximumInstanceCount",
    "containerSize": "functionAppConfig.scaleAndConcurrency.instanceMemoryMB",
}


def nothing_flex_refuses(files: list[BicepFile]) -> list[str]:
    problems = []
    for file, decl in _each(files, "Microsoft.Web/sites"):
        values = body(decl)
        if not isinstance(prop(values, "properties.functionAppConfig"), dict):
            continue
        for where in ("properties", "properties.siteConfig"):
            found = prop(values, where)
            for key in sorted(set(found) & FLEX_REFUSED.keys() if isinstance(found, dict) else ()):
                problems.append(
                    f"{file.name} {decl.name}: {where}.{key} is not for Flex Consumption "
                    f"({FLEX_REFUSED[key]})"
                )
    return problems


def role_assignment_names(files: list[BicepFile]) -> list[str]:
    """guid(scope, principal, role): stable across re-deployments, unique per grant."""
    problems = []
    for file, decl in _each(files, "Microsoft.Authorization/roleAssignments"):
        name = body(decl).get("name")
        node = name.node if isinstance(name, Expr) else None
        fn = (
            node.child_by_field_name("function")
            if node and node.type == "call_expression"
            else None
        )
        args = node.child_by_field_name("arguments").named_children if fn else []
        if not fn or fn.text != b"guid" or len(args) != 3:
            problems.append(f"{file.name} {decl.name}: name is not guid(scope, principal, role)")
            continue
        principal = prop(body(decl), "properties.principalId")
        if not isinstance(principal, Expr) or principal.text not in args[1].text.decode():
            problems.append(f"{file.name} {decl.name}: guid()'s second part is not its principalId")
    return problems


# Built-in role definition ids (the same in every tenant), as `az role definition list` names
# them: a role id in infra/ that is not one of these is a typo or a role nobody reviewed.
BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "a4417e6f-fecd-4de8-b567-7b0420556985": "Key Vault Certificates Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def known_roles(files: list[BicepFile]) -> list[str]:
    """Every role id in a file that assigns roles is a reviewed built-in role."""
    problems = []
    for file in files:
        if not file.resources("Microsoft.Authorization/roleAssignments"):
            continue
        for text in _strings(file.tree.root_node):
            if _GUID.match(text) and text.lower() not in BUILT_IN_ROLES:
                problems.append(f"{file.name}: role {text} is not a reviewed built-in role")
    return problems


_SECRET_NAME = re.compile(r"(?i)(secret|password|passphrase|connectionstring|accesskey|privatekey)")
# Parameters and outputs whose names look secret but hold none (names of secrets end in Name(s)).
NOT_SECRET = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "an ingestion address; local auth is off, so "
    "sending telemetry needs an Entra token of an identity with Monitoring Metrics Publisher",
    "connectionString": "the same, as infra/app/monitoring.bicep's output",
    "applicationInsightsConnectionString": "the same, handed to infra/app/function.bicep",
}


def _looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not name.endswith(("Name", "Names"))


_KEY_MATERIAL = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(AccountKey|SharedAccessKey|accesskey)="),
    re.compile(r"^[A-Za-z0-9+/]{40,}={0,2}$"),  # a long base64 literal: a key, not a name
]


def no_secrets(files: list[BicepFile]) -> list[str]:
    """No secret in a parameter default or an output; secret-named parameters are @secure()."""
    problems = []
    for file in files:
        secure = {n for n, p in file.params.items() if "secure" in p.decorators}
        for name, param in file.params.items():
            default = param.value
            if name in secure and default is not None:
                problems.append(f"{file.name} param {name}: a @secure() parameter has a default")
            if (
                _looks_secret(name)
                and name not in secure | NOT_SECRET.keys()
                and param.type != "bool"
            ):
                problems.append(f"{file.name} param {name}: looks secret but is not @secure()")
            for text in _strings(default):
                if any(p.search(text) for p in _KEY_MATERIAL):
                    problems.append(
                        f"{file.name} param {name}: its default looks like key material"
                    )
        for name, output in file.outputs.items():
            if "secure" in output.decorators:
                problems.append(f"{file.name} output {name}: a secure output")
            if output.value is None:
                continue
            listed = calls(output.value, prefix="list")
            if listed:
                problems.append(f"{file.name} output {name}: calls {sorted(listed)}")
            if identifiers(output.value) & secure:
                problems.append(f"{file.name} output {name}: returns a @secure() parameter")
            if _looks_secret(name) and name not in NOT_SECRET:
                problems.append(f"{file.name} output {name}: a secret-looking output")
    return problems


def _strings(node) -> list[str]:
    if node is None:
        return []
    found = []

    def walk(n) -> None:
        if n.type == "string_content":
            found.append(n.text.decode())
        for child in n.children:
            walk(child)

    walk(node)
    return found


CHECKS: list[Check] = [
    declared_properties,
    required_resources,
    publishing_credentials_off,
    always_ready_http,
    nothing_flex_refuses,
    template_deployment_reads_the_vault,
    vaults_are_audited,
    role_assignment_names,
    known_roles,
    no_secrets,
]


def run_all(files: list[BicepFile]) -> list[str]:
    return [problem for check in CHECKS for problem in check(files)]
