"""Operations at a terminal: one module per CLI command group (replay, audit)."""
