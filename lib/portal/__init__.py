"""The admin portal (F6): server-rendered pages over the config API's services.

- `session`  the signed-in person's cookie: sealed, idle and absolute limits, CSRF token
- `signin`   the Entra ID sign-in (auth code + PKCE) through the shared sign-in sessions
- `core`     the page table's row and what a page handler is given
- `app`      the router: cookie, CSRF, roles, then the page
- `pages/`   one module per area (endpoints, approvals, audit, reports, account)
"""
