"""SMS: the organization's consent, Communication Services numbers and their links to
endpoints, per-endpoint text settings and the intake certificates (config.py); later the
intake, the sender and its ledger. Heavy SDK imports stay inside the functions that call out."""
