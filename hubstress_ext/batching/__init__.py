"""The micro-batching endpoint: requests queue up and the model runs once per batch.

``Batcher`` is the event-driven core (no network); ``handlers`` serve it over HTTP, inside
the Jupyter server (``extension``) or standalone (``standalone``, ``hubstress serve``).
"""

from hubstress_ext.batching.admission import Refused
from hubstress_ext.batching.batcher import Batcher, BatchSettings

__all__ = ["BatchSettings", "Batcher", "Refused"]
