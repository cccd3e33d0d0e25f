"""The read model's state hash lives in the product now (projections/state_hash.py)."""
from projections.state_hash import PROJECTED, state_hash, state_hashes  # noqa: F401
