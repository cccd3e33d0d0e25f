"""The read model's state hash lives in the product now (projections/store/state_hash.py)."""
from projections.store.state_hash import PROJECTED, state_hash, state_hashes  # noqa: F401
