"""Our SMART App Launch 2.x / OAuth 2 client library (no fhirclient).

One idea per module; everything that talks to the network goes through `http.OutboundHttp`:

- `http`        outbound HTTP to EHRs: timeouts, size cap, SSRF guard, redirects, Retry-After
- `pkce`        PKCE verifier / S256 challenge, `state` and `nonce` values
- `discovery`   `.well-known/smart-configuration` + `/metadata`, validation, host pinning, cache
- `scopes`      the scopes we request and the comparison with what was granted
- `client_auth` client_secret_basic and private_key_jwt token-endpoint authentication
- `keys`        our signing keys and the public JWKS we publish
- `tokens`      authorization-code exchange, refresh, client_credentials (Backend Services)
- `id_token`    OpenID Connect id_token verification against the issuer's JWKS
- `context`     the launch context (appointment, encounter, patient, user) per vendor

Importing this package is cheap on purpose: requests, cryptography and PyJWT load only in the
modules (or functions) that use them.
"""
