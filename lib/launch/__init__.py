"""The SMART EHR launch, from the EHR's "Begin virtual visit" to the meeting or the visit page.

- `start`       GET /api/launch/{endpoint}/{persona}: refusals without network, then authorize
- `complete`    the EHR's answer: code -> tokens -> identity -> context -> the visit
- `microsoft`   a clinician's one-time Microsoft sign-in, mapping their EHR user (F8)
- `visit_page`  where each person goes next, the clinician's visit page and its live status
"""
