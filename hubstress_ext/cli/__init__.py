"""The ``hubstress`` command: a thin front end over the engine's run objects."""
