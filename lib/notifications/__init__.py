"""Microsoft Graph change notifications: what Teams tells us about a visit's meeting.

- `certificate`    the key pair rich notifications are encrypted to; decrypts and checks them
- `subscriptions`  `GraphSubscriptions`: one per visit's meeting (`meetingCallEvents`), one for
                   the tenant's call records; created, renewed, recreated, deleted
- `roster`         a meeting's call event (resource data) -> visit events
- `webhook`        `POST /api/graph/notifications`: handshake, clientState, lifecycle, enqueue
- `tasks`          the `graph-tasks` queue: the slow work a notification or a visit asks for
- `records`        call records -> the visit's quality row and a `measured` event
- `reconcile`      the attendance report -> the events it implies (a missed notification)

Placed above lib/visits (it sends visit events and reads visits) and below the launch, which
never waits for any of it: subscriptions are made from the visit-events queue.
"""
