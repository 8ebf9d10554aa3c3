"""The engine: run options, the Run object every front end drives, live progress."""

from hubstress_ext.engine.run import Run
from hubstress_ext.errors import OptionError

__all__ = ["OptionError", "Run"]
