"""The config API's OpenAPI document itself: valid OpenAPI 3.1, and saying what the API enforces."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from lib.admin.api import ROUTES
from lib.admin.openapi import ERRORS, document
from lib.endpoints.models import EndpointCreate, EndpointUpdate
from lib.web.errors import CATALOGUE

METHODS = ("get", "post", "put", "patch", "delete")
# Mappings carry no version (no ETag): removing one twice is a 404, nothing to overwrite.
NO_VERSION = {("delete", "/config/endpoints/{id}/mappings/{mapping}")}


@pytest.fixture(scope="module", params=[False, True], ids=["azure", "local"])
def doc(request):
    return document("test", local_mode=request.param)


def _operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def _resolve(doc, node):
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = doc["components"][section][name]
    return node


def _params(doc, op):
    return {(p["in"], p["name"]): p for p in (_resolve(doc, p) for p in op["parameters"])}


def test_the_document_is_valid_openapi_3_1(doc):
    try:  # openapi-spec-validator when installed; otherwise the 3.1 schema Schemathesis ships
        from openapi_spec_validator import validate

        validate(doc)
    except ImportError:
        definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
        errors = [str(e) for e in definitions.OPENAPI_31_VALIDATOR.iter_errors(doc)]
        assert not errors, errors[:5]
    assert doc["openapi"] == "3.1.0"


def test_the_validator_would_notice_a_broken_document():
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    broken = {**document("test", local_mode=False), "paths": {"/x": {"get": {"responses": 1}}}}
    assert list(definitions.OPENAPI_31_VALIDATOR.iter_errors(broken))


def test_every_route_is_documented_once(doc):
    documented = {(m.upper(), p) for p, m, _ in _operations(doc)}
    assert documented == {(r.method, f"/{r.path}") for r in ROUTES}


def test_changes_need_if_match(doc):
    for path, method, op in _operations(doc):
        if method not in ("patch", "delete") or (method, path) in NO_VERSION:
            continue
        if_match = _params(doc, op).get(("header", "If-Match"))
        assert if_match and if_match["required"] is True, (method, path)
        assert {"412", "428"} <= op["responses"].keys(), (method, path)


def test_every_operation_lists_its_error_answers_as_problem_json(doc):
    for path, method, op in _operations(doc):
        responses = op["responses"]
        assert "default" not in responses, (method, path)  # each status is named
        expected = {"503"}
        if op.get("security"):
            expected |= {"401", "403"}
        if "{id}" in path:
            expected.add("404")
        if "requestBody" in op:
            expected |= {"400", "413", "415", "422"}
        if any(p["in"] == "query" for p in _params(doc, op).values()):
            expected.add("400")
        assert expected <= responses.keys(), (method, path, expected - responses.keys())
        for status, answer in responses.items():
            if status.startswith(("4", "5")):
                answer = _resolve(doc, answer)
                schema = answer["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)


def test_error_descriptions_name_real_codes_with_that_status():
    for status, text in ERRORS.items():
        codes = re.findall(r"\b[A-Z]+(?:-[A-Z0-9]+)+\b", text)
        assert codes, status
        for code in codes:
            assert CATALOGUE[code].status == status, (code, status)


def test_path_and_query_parameters_are_declared_with_their_forms(doc):
    for path, method, op in _operations(doc):
        params = _params(doc, op)
        for name in re.findall(r"{(\w+)}", path):
            assert params[("path", name)]["schema"].get("pattern"), (method, path, name)
    audit = _params(doc, doc["paths"]["/config/audit"]["get"])
    assert {n for (where, n) in audit if where == "query"} == {
        "endpoint", "actor", "action", "since", "until", "pageSize", "continuation"
    }  # fmt: skip
    page_size = audit[("query", "pageSize")]["schema"]
    assert (page_size["minimum"], page_size["maximum"]) == (1, 200)
    records = doc["paths"]["/config/endpoints/{id}/integration-records"]["get"]
    assert _params(doc, records)[("query", "format")]["schema"]["enum"] == ["json", "text"]


URLS = [
    ("https://fhir.example.org/api/FHIR/R4", True),
    ("https://127.0.0.1:7443/cerner/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d", True),
    ("https://fhir.example.org:8443/r4/%7Etenant/", True),
    ("http://fhir.example.org/r4", "local"),
    ("https://user:pw@fhir.example.org/r4", False),
    ("https://fhir.example.org/r4?x=1", False),
    ("https://fhir.example.org/r4#f", False),
    ("https://fhir.example.org:0/r4", False),
    ("https://fhir.example.org:65536/r4", False),
    ("https://fhir example.org/r4", False),
    ("https:///r4", False),
    ("ftp://fhir.example.org/r4", False),
    (" https://fhir.example.org/r4", False),
    ("https://fhir.example.org/r4\n", False),
    ("https://" + "a" * 300 + ".org", False),
]


@pytest.mark.parametrize("local", [False, True], ids=["azure", "local"])
@pytest.mark.parametrize(("url", "ok"), URLS)
def test_base_url_schema_and_validator_agree(url, ok, local):
    expected = ok is True or (ok == "local" and local)
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # an ECMA-262 regex, as clients have
    schema = document("test", local_mode=local)["components"]["schemas"]["EndpointCreate"]
    field = schema["properties"]["fhir_base_url"]
    documented = jsonschema_rs.Draft202012Validator(field, validate_formats=True).is_valid(url)
    assert documented == expected
    body = {"fhir_base_url": url}
    try:
        EndpointUpdate.model_validate(body, context={"local_mode": local})
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == expected


def test_create_schema_says_epic_needs_an_approver(doc):
    schema = doc["components"]["schemas"]["EndpointCreate"]
    epic = next(b for b in schema["anyOf"] if "epic" in b["properties"]["vendor"]["enum"])
    assert "approver" in epic["required"]
    # ...and the model's own shape still refuses what the schema refuses.
    with pytest.raises(ValidationError):
        EndpointCreate.model_validate({"vendor": "epic", "launch": {"open_teams_directly": 0}})
