"""The store: the read model's tables and migrations, how fold states become rows
(`serialize`, `writes`, `read_columns`), the queries the API reads through (`views`,
`pagination`), the control store (keys, sessions, idempotency) and engine set-up. It
imports the domain, never the runtime."""
