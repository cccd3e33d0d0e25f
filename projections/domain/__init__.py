"""The pure domain: the fold (`apply(state, event) -> Applied`), the states it folds,
the clock bounds, the exact aggregates and the consensus engine. No I/O: nothing here
imports SQLAlchemy, asyncio or FastAPI, so it runs the same in a test, a worker thread,
a pool process or an auditor's laptop."""
