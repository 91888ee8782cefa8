"""Visits: one appointment's meeting, and who is in it.

- `keys`      the visit key and the clinician hash (keyed hashes; every path computes the same)
- `store`     visits and their events (Table Storage)
- `mappings`  clinicians' EHR user -> Microsoft account (keyed hash -> Entra object id)
- `opening`   opening a visit: claim, meeting, lobby, the person's "arrived" event
- `events`    the one visit event model, and the fold of a visit's events into its state
- `quality`   a visit's call-quality figures, from the Graph call record after the call
- `timeline`  sending events to the visit-events queue, and applying them (the queue's consumer)
"""
