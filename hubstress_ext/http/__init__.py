"""The one HTTP stack for all load traffic: aiohttp + a recorded, deadline-bounded retry policy."""

from hubstress_ext.http.client import HttpClient, Response
from hubstress_ext.http.retry import Deadline, RetryPolicy

__all__ = ["Deadline", "HttpClient", "Response", "RetryPolicy"]
