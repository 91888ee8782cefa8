"""EHR write-back (F17): what the EHR should show of a visit, queued and written per vendor.

- `jobs`: the milestone a visit's state means for the EHR, the job that carries it, and the
  timeline listener that queues a job when the milestone changes;
- `progress`: per visit, what was queued and what was written (a rank that only goes up);
- `credentials`, `adapters`: how we authenticate, and the Epic and FHIR R4 writes;
- `worker`: one job, start to end, with its failure classes;
- `failures`: the dead-letter table, its listing and replay, and the poison sweep.
"""
