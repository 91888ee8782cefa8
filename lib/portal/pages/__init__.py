"""One module per area of the portal; each exports PAGES and NAV (see lib/portal/core.py)."""
