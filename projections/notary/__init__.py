"""The notary: each partition's records are the leaves of an append-only Merkle tree
(RFC 9162 hashing), stored in the read model as tiles of hashes; signed tree heads are the
digests an auditor keeps; inclusion and consistency proofs let anyone check a run's history
offline and check that the log only grew (docs/security.md, "Tamper evidence").

Pure parts (no I/O): `merkle` (RFC 9162), `leaf` (a record's bytes in the tree), `tiles`
(how the tree is stored and grown), `heads` (signed tree heads, Ed25519), `bundle` (the
proof bundle and the digest, and their offline check). Adapters: `storage` (the tree's
rows), `proofs` (heads, digests and a run's bundle from the stored tree and the log),
`logcheck` (the log recomputed against its tree), `keys` (where the signing key lives).
"""
