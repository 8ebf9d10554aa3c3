"""Results: one record per HTTP request, per-user lifecycles, summaries and saved runs."""

from hubstress_ext.http.records import Record, RecordSink
from hubstress_ext.results.summary import summarize

__all__ = ["Record", "RecordSink", "summarize"]
