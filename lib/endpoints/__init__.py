"""The endpoint: a registered FHIR base URL, and everything the connector does with one.

- `models`      the stored `Endpoint` and the config API's request shapes
- `lifecycle`   which status an endpoint has (a pure function of its facts)
- `service`     register, change, validate, approve, disable, delete; every change audited
- `validation`  discovery checks with a code per problem (F2)
- `approval`    the Epic approver's EHR sign-in (F3)
- `records`     integration records for the EHR build team (F4)
- `audit`       who changed what (`Actor`, entries in the endpoint's own partition)
- `client`      the endpoint as a SMART client: pinned discovery, scopes, code redemption, reads
"""
