"""Microsoft Teams through Microsoft Graph (app-only).

- `graph`     `GraphClient`: msal client-credentials token (one msal app per process), retries
              with Retry-After, Graph errors as GRAPH-* `AppError`s
- `meetings`  `MeetingService`: one meeting per visit (createOrGet + one lobby PATCH), and the
              join-URL allow-list for redirects

Importing this package is cheap: msal and requests load on the first Graph call.
"""

from lib.teams.graph import GraphClient, GraphResponse
from lib.teams.meetings import Meeting, MeetingService, join_url_allowed

__all__ = ["GraphClient", "GraphResponse", "Meeting", "MeetingService", "join_url_allowed"]
