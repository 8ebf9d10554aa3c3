"""The package's version, at the bottom of the layers: every part can say which hubstress it is
(saved runs, Dask workers, ``--version``) without importing the package's public facade."""

__version__ = "0.1.0"
