"""Visits: one appointment's meeting, and who is in it.

- `keys`      the visit key and the clinician hash (keyed hashes; every path computes the same)
- `store`     visits and their events (Table Storage)
- `mappings`  clinicians' EHR user -> Microsoft account (keyed hash -> Entra object id)
- `opening`   opening a visit: claim, meeting, lobby, the connect event
"""
