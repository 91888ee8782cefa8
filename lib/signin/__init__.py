"""Sign-ins we start and their one redirect URI.

- `sessions`  the server-side half of each OAuth round trip (state, PKCE verifier, nonce)
- `binding`   a cookie per sign-in that ties it to the browser that started it
- `callback`  GET /api/launch/callback: consume the state, then the table of completers by kind
"""
