"""HTTP handlers of the batching endpoint, written once as mixins.

``standalone`` combines them with a plain Tornado ``RequestHandler``; ``extension`` with
Jupyter's ``APIHandler`` behind its authentication. Every outcome is a JSON body with a
specific status: 400/413 bad input (checked before queueing), 503 (or 429) + Retry-After
refused by admission (with the reason and the predicted wait), 504 deadline expired while
queued, 500 model error (with an error id), 200 served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable
from typing import Any

from hubstress_ext.batching.admission import Refused
from hubstress_ext.batching.batcher import DeadlineExpired, ModelError, Pending, Result, now_ms
from hubstress_ext.batching.service import BatchingService
from hubstress_ext.errors import HubstressError

log = logging.getLogger("hubstress.batching")

SERVICE_KEY = "hubstress_batching"
DEADLINE_HEADER = "X-Deadline-Ms"


class _Base:
    """Shared helpers; ``self`` is a Tornado RequestHandler."""

    @property
    def service(self) -> BatchingService:
        return self.application.settings[SERVICE_KEY]  # type: ignore[attr-defined]

    def reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        # allow_nan=False: NaN/Infinity are not JSON, and a client's parser may choke on them
        self.send_json(status, _ENCODER.encode(payload), headers)

    def send_json(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        if status != 200:  # 200 is Tornado's default
            self.set_status(status)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json")  # type: ignore[attr-defined]
        for key, value in (headers or {}).items():
            self.set_header(key, value)  # type: ignore[attr-defined]
        self.finish(text)  # type: ignore[attr-defined]

    def json_body(self) -> Any:
        return parse_json(self.request.body)  # type: ignore[attr-defined]


def _no_constants(name: str) -> Any:
    raise BadInput(f"body must be JSON: {name} is not a JSON value")


# built once: json.loads/dumps with any keyword build a new decoder/encoder per call
# (measured: 3.2 vs 1.2 us per parse, 3.4 vs 2.6 us per encode)
_DECODER = json.JSONDecoder(parse_constant=_no_constants)
_ENCODER = json.JSONEncoder(allow_nan=False)
encode_json = _ENCODER.encode  # what every answer goes through (benchmarks' plain handler too)


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity (Python's json accepts them), no recursion blow-up."""
    try:
        return _DECODER.decode(body.decode("utf-8") if body else "null")
    except BadInput:
        raise  # NaN/Infinity, already worded
    except RecursionError:
        raise BadInput("body must be JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadInput(f"body must be JSON: {exc}") from None


class BadInput(HubstressError, ValueError):
    """A request the endpoint answers 400: the message says what is wrong with it."""


def refusal_json(refused: Refused) -> str:
    """The body of a refusal: why, the predicted completion, when the queue will have drained."""
    return _ENCODER.encode(
        {
            "error": "busy",
            "reason": refused.reason,
            "message": str(refused),
            "expected_ms": refused.expected_ms,
            "retry_after_ms": round(refused.retry_after_s * 1000.0, 3),
        }
    )


def asked_deadline_ms(values: list[str], default: float) -> float:
    """The ``X-Deadline-Ms`` a client asked for (the last one sent), never beyond the server's."""
    if not values:
        return default
    raw = values[-1]
    try:
        asked = float(raw)
    except ValueError:
        asked = math.nan
    if not math.isfinite(asked) or asked <= 0:  # NaN would switch the deadline off
        raise BadInput(f"{DEADLINE_HEADER} must be a finite number of milliseconds > 0 (got {raw!r})")
    return min(asked, default)  # a client may only shorten the server's deadline


class BatchMixin(_Base):
    _pending: Pending | None = None

    def post(self) -> Awaitable[None] | None:
        """Validate, admit, answer. Not a coroutine on purpose: with an inline model and an
        idle queue the item is served by ``serve_now``, and answering at once skips a future
        and a coroutine per request (measurable at batch size 1)."""
        service = self.service
        batcher = service.batcher
        request = self.request  # type: ignore[attr-defined]
        connection = request.connection
        admitted = getattr(connection, "hubstress_admitted", False)
        if admitted:
            service.incoming.discard(connection)  # from now on in the queue, or answered
        body = request.body
        if len(body) > service.max_body_bytes:
            self.reply(413, {"error": "too_large", "message": f"body over {service.max_body_bytes} bytes"})
            return None
        try:
            item = parse_json(body)
            # get_list: a plain .get() raises and catches KeyError inside when the header is absent
            deadline_ms = asked_deadline_ms(
                request.headers.get_list(DEADLINE_HEADER), batcher.settings.deadline_ms
            )
            if type(item) is not dict:
                raise BadInput('body must be a JSON object such as {"ts": 1700000000000}')
            ts = item.get("ts")
            if type(ts) is not int:  # bool is not int here
                if ts is None:
                    raise BadInput("missing 'ts' (milliseconds since the epoch)")
                raise BadInput(f"'ts' must be an integer number of milliseconds (got {ts!r})")
            if service.check_item is not None and (problem := service.check_item(item)):
                raise BadInput(problem)
        except BadInput as exc:
            self.reply(400, {"error": "bad_request", "message": str(exc)})
            return None
        # request_time(): since the server read the headers, so time spent reaching this
        # handler counts against the request's wait and deadline; where the server reads kernel
        # receive stamps (``hubstress serve``), the time it sat unread in its socket counts
        # toward its deadline
        age_s = request.request_time()
        unread_s = getattr(connection, "hubstress_unread_s", 0.0)
        try:
            result = batcher.serve_now(item, deadline_ms / 1000.0, age_s, unread_s)
            if result is not None:
                self._send_result(result, ts)
                return None
            pending = batcher.submit(
                item,
                deadline_ms / 1000.0,
                age_s,
                admitted=admitted,
                unread_s=unread_s,
            )
        except Refused as refused:
            self._refuse(refused)
            return None
        except ModelError as exc:
            self._model_error(exc)
            return None
        self._pending = pending
        return self._answer_later(pending.future, ts, deadline_ms)

    def _refuse(self, refused: Refused) -> None:
        batcher = self.service.batcher
        headers = {"Retry-After": refused.retry_after_header}
        self.send_json(batcher.settings.refuse_status, refusal_json(refused), headers)
        batcher.note_refusal(self.request.request_time())  # type: ignore[attr-defined]

    def _model_error(self, exc: ModelError) -> None:
        self.reply(500, {"error": "model_error", "message": str(exc), "error_id": exc.error_id})

    async def _answer_later(self, future: asyncio.Future, ts: int, deadline_ms: float) -> None:
        try:
            result = await future
        except asyncio.CancelledError:
            return  # withdrawn because the client went away: nobody to answer
        except DeadlineExpired:
            self.reply(504, {"error": "deadline", "message": f"not served within {deadline_ms:g} ms"})
            return
        except ModelError as exc:
            self._model_error(exc)
            return
        self._send_result(result, ts)

    def _send_result(self, result: Result, ts: int) -> None:
        resp_ts = now_ms()
        # Written by hand: every field is an int, or a finite float (clock differences), so
        # the text is valid JSON; the encoder is kept for the model's output, which may not be
        tail = "}"
        if result.output is not None:
            try:
                tail = f',"result":{_ENCODER.encode(result.output)}}}'
            except (ValueError, TypeError) as exc:  # only this item fails, with a valid JSON answer
                log.warning("model output for one item is not JSON (%s); answered 500", exc)
                self.reply(500, {"error": "model_error", "message": f"the model's output is not JSON: {exc}"})
                return
        self.send_json(
            200,
            f'{{"rec_ts":{ts},"resp_ts":{resp_ts},"ts_diff":{resp_ts - ts},"batch_id":{result.batch_id},'
            f'"batch_size":{result.batch_size},"queue_ms":{result.queue_ms:.3f},'
            f'"model_ms":{result.model_ms:.3f}{tail}',
        )

    def on_connection_close(self) -> None:
        pending = self._pending
        if pending is not None and not pending.future.done():
            self.service.batcher.withdraw(pending, "cancelled")
        super().on_connection_close()  # type: ignore[misc]


class ConfigMixin(_Base):
    def get(self) -> None:
        self.reply(200, self.service.config())

    def patch(self) -> None:
        try:
            changes = self.json_body()
            if not isinstance(changes, dict) or not changes:
                raise BadInput('body must be a JSON object of settings, e.g. {"batch_size": 8}')
            self.service.batcher.reconfigure(**changes)
        except (BadInput, ValueError, TypeError) as exc:
            self.reply(400, {"error": "bad_request", "message": str(exc)})
            return
        self.reply(200, self.service.config())


class StatsMixin(_Base):
    def get(self) -> None:
        self.reply(200, self.service.stats())
