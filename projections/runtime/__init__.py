"""The runtime: what moves records from the log into the store. The projector loop and
its batches, checkpoints (the tracking records), quarantine and retries, transient-fault
handling, heartbeats, rebuilds and read-model versions, and the verify/repair of one run
against its own history."""
