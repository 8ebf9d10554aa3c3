"""The engine: run options, the Run object every front end drives, live progress."""

from hubstress_ext.engine.options import OptionError
from hubstress_ext.engine.run import Run

__all__ = ["OptionError", "Run"]
