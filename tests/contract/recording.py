"""Record every HTTP exchange the Fly client makes, and check it against the contract spec."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import httpx
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.contract.spec import SPEC_BASE_PATH, SPEC_SERVER, contract_spec, operation_ids


@dataclass
class Exchange:
    method: str
    url: httpx.URL
    request_headers: httpx.Headers
    request_body: bytes
    status: int
    response_headers: httpx.Headers
    response_body: bytes
    sent_at: float = 0.0  # time.monotonic() when the request left

    @property
    def path(self) -> str:
        return self.url.path

    def __str__(self) -> str:
        query = f"?{self.url.query.decode()}" if self.url.query else ""
        return f"{self.method} {self.path}{query} -> {self.status}"


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that keeps a copy of every request and response."""

    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    exchanges: list[Exchange] = field(default_factory=list)
    # Every request sent, answered or not: (method, path, time.monotonic()).
    sent: list[tuple[str, str, float]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request_body = await request.aread()
        sent_at = time.monotonic()
        self.sent.append((request.method, request.url.path, sent_at))
        response = await self.inner.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        # Decode (gzip...) the way the client will, for validation only.
        decoded = httpx.Response(response.status_code, headers=response.headers, content=raw)
        self.exchanges.append(
            Exchange(
                method=request.method,
                url=request.url,
                request_headers=request.headers,
                request_body=request_body,
                status=response.status_code,
                response_headers=response.headers,
                response_body=decoded.content,
                sent_at=sent_at,
            )
        )
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _SpecRequest:
    """openapi-core's request protocol over a recorded exchange. The host is the spec's server
    (the simulator's 127.0.0.1 address says nothing about the contract)."""

    def __init__(self, exchange: Exchange) -> None:
        self.host_url = SPEC_SERVER
        self.path = exchange.path
        self.method = exchange.method.lower()
        self.body: bytes | None = exchange.request_body or None
        self.content_type = exchange.request_headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(exchange.url.params.multi_items())),
            header=Headers(list(exchange.request_headers.multi_items())),
            cookie=ImmutableMultiDict(),
        )


class _SpecResponse:
    def __init__(self, exchange: Exchange) -> None:
        self.status_code = exchange.status
        self.headers = Headers(list(exchange.response_headers.multi_items()))
        self.content_type = exchange.response_headers.get("content-type", "")
        self.data: bytes | None = exchange.response_body or None


def is_machines_api(exchange: Exchange) -> bool:
    return exchange.path.startswith(SPEC_BASE_PATH + "/")


def violations(exchange: Exchange) -> list[str]:
    """Everything wrong with one exchange, per the contract spec; empty when it conforms."""
    spec = contract_spec()
    request, response = _SpecRequest(exchange), _SpecResponse(exchange)
    problems = []
    for side, check in (
        ("request", lambda: spec.validate_request(request)),
        ("response", lambda: spec.validate_response(request, response)),
    ):
        try:
            check()
        except Exception as exc:
            problems.append(f"{exchange}: {side}: {_describe(exc)}")
    return problems


def _describe(exc: BaseException) -> str:
    details = [str(exc)]
    cause = exc.__cause__
    while cause is not None:
        details.append(str(cause))
        details.extend(str(e.message) for e in getattr(cause, "schema_errors", None) or [])
        cause = cause.__cause__
    return " | ".join(dict.fromkeys(d for d in details if d))


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
    return re.compile(f"^{re.escape(SPEC_BASE_PATH)}{pattern}$")


def operation_of(exchange: Exchange) -> str | None:
    """The operationId an exchange belongs to (literal segments win over parameters)."""
    method = exchange.method.lower()
    candidates = [
        (template.count("{"), op_id)
        for (template, op_method), op_id in operation_ids().items()
        if op_method == method and _template_regex(template).match(exchange.path)
    ]
    return min(candidates)[1] if candidates else None
