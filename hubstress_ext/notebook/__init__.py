"""Notebook front ends: the ``%hubstress`` magics, the live display and the widget panel.

All of them are thin layers over the run objects the CLI drives (``engine.run.Run``).
"""
