"""Logging for the CLI: stderr, optional file, and a filter that masks secrets everywhere."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import tempfile
from pathlib import Path


class RedactSecrets(logging.Filter):
    """Replace any known secret in a log record's final message with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


def default_log_path() -> Path:
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    return Path(tempfile.gettempdir()) / f"hubstress-{stamp}.log"


def setup_logging(verbose: bool, log_to_file: str | None, secrets: list[str]) -> Path | None:
    """Configure the ``hubstress`` logger; returns the log file path when one is written."""
    logger = logging.getLogger("hubstress")
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    redact = RedactSecrets(secrets)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    stderr.setLevel(logging.DEBUG if verbose else logging.WARNING)
    stderr.addFilter(redact)
    logger.addHandler(stderr)
    path = None
    if log_to_file is not None:
        path = Path(log_to_file) if log_to_file else default_log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.setLevel(logging.DEBUG)
        handler.addFilter(redact)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    return path
