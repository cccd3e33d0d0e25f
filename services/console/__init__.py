"""The web console: server-rendered pages over the same read model the API serves.

`install(app)` mounts it on the API application at `/console` (and `/` redirects
there). Pages call `projections.store.views` and the API's resource shapers; they hold no
query logic of their own. See docs/console.md.
"""
from .app import install

__all__ = ["install"]
