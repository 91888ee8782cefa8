"""Reports (F18 usage, F19 call quality): projections written as visit events are applied, and
what is read from them (the visits report, its CSV, the daily summary). Nothing here scans the
Visits table: a report reads one partition per endpoint and day of its range."""
