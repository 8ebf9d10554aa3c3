"""Request bodies: the seed client's JSON with a fresh ``ts`` per request, from a template.

The template is serialised once and split around ``ts``; each request only formats an integer
between two byte strings (a ``json.dumps`` per request would cost more than the rest of the
request).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE: dict[str, Any] = {"ts": 0, "url": "https://example.com/image.png"}
_MARK = "\x00hubstress-ts\x00"


class BodyTemplate:
    def __init__(self, template: dict[str, Any] | None = None) -> None:
        doc = dict(DEFAULT_TEMPLATE if template is None else template)
        doc["ts"] = _MARK
        text = json.dumps(doc, separators=(",", ":"))
        quoted = json.dumps(_MARK)
        before, after = text.split(quoted, 1)
        self._before, self._after = before.encode(), after.encode()
        self.template = {k: v for k, v in doc.items() if k != "ts"}

    def render(self) -> bytes:
        """The body with ``ts`` = now in milliseconds since the epoch."""
        return b"%s%d%s" % (self._before, int(time.time() * 1000), self._after)


def parse_template(text: str) -> dict[str, Any]:
    """``--template``: a JSON object, or ``@path`` to a file holding one; ``ts`` is always set."""
    source = "template"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read template file {path}: {exc.strerror}") from None
        source = f"template file {path}"
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f'{source} must be a JSON object such as {{"url": "x"}} (got {type(doc).__name__})')
    return doc
