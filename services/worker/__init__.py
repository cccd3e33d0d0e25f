"""The worker side: a harness that runs a block function over runs, and the demo."""
