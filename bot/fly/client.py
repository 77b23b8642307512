"""The async client flybot uses to talk to Fly: Machines REST, releases, GraphQL, Prometheus."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import logging
import math
import time
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from bot import metrics
from bot.fly.config import FlyConfig, authorization_header, normalize_token
from bot.fly.errors import (
    ConflictError,
    FlyAPIError,
    FlyTimeoutError,
    LeaseHeldError,
    NotFoundError,
    TransportError,
    error_class_for,
)
from bot.fly.models import (
    App,
    Certificate,
    IPAssignment,
    Lease,
    LogEntry,
    LogPage,
    Machine,
    MachineConfig,
    MachineEvent,
    MachinePage,
    PromSample,
    PromSeries,
    Release,
    Secret,
    SecretsSetResult,
    Volume,
    WaitResult,
)
from bot.fly.retry import (
    is_ambiguous,
    is_safe_to_resend,
    is_transient,
    parse_retry_after,
    with_retries,
)
from bot.written import written_forms

log = logging.getLogger("bot.fly")

M = TypeVar("M", bound=BaseModel)

LEASE_NONCE_HEADER = "fly-machine-lease-nonce"
REQUEST_ID_HEADER = "fly-request-id"
NEXT_CURSOR_HEADER = "fly-next-cursor"
# Written into the metadata of every machine the client creates, so an ambiguous create
# (408, timeout, 5xx) can be checked before it is retried.
LAUNCH_ID_KEY = "flybot_launch_id"
# Fly blocks a wait call for at most 60 s; longer waits are a loop of calls.
MAX_WAIT_PER_CALL = 60

_IMAGE_QUERY = (
    "query ($app: String!, $ref: String!) { app(name: $app) { image(ref: $ref) { digest } } }"
)
_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)

_CURRENT_RELEASE_QUERY = """
query ($appName: String!) {
  app(name: $appName) {
    currentReleaseUnprocessed { id version status description imageRef createdAt }
  }
}
"""


_ADD_ONS_QUERY = """
query ($appName: String!) {
  app(name: $appName) {
    addOns(type: upstash_redis) {
      nodes { id name status primaryRegion readRegions addOnPlan { displayName } }
    }
  }
}
"""


class _FlyAuth(httpx.Auth):
    """Adds the Authorization header at send time, so the token lives in one place."""

    def __init__(self, token: str) -> None:
        self._header = authorization_header(token) if token else None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._header:
            request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "_FlyAuth(<redacted>)"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _config_json(config: MachineConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, MachineConfig):
        return config.to_json()
    return copy.deepcopy(dict(config))


def _unix(value: datetime | float) -> str:
    return f"{value.timestamp() if isinstance(value, datetime) else float(value):.3f}"


def _contains(actual: Any, sent: Any) -> bool:
    """Whether what Fly holds carries everything that was sent (Fly may add fields)."""
    if isinstance(sent, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and _contains(actual[key], value) for key, value in sent.items()
        )
    if isinstance(sent, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(sent)
            and all(_contains(a, b) for a, b in zip(actual, sent, strict=True))
        )
    if isinstance(sent, bool) or isinstance(actual, bool):
        return actual is sent
    if isinstance(sent, int | float) and isinstance(actual, int | float):
        return float(actual) == float(sent)
    return bool(actual == sent)


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class FlyClient:
    """One client for everything flybot asks of Fly. Use as `async with FlyClient(cfg) as fly:`
    or call `aclose()`. Every call has a timeout and retries transient failures within the
    config's retry policy; every failure is raised as a `FlyAPIError`."""

    def __init__(
        self, config: FlyConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._auth = _FlyAuth(config.token)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=config.timeouts.httpx(),
            headers={"User-Agent": config.user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )
        # Launch ids of creates that were sent again after an ambiguous failure with no
        # machine found: a duplicate may show up once Fly's listing catches up.
        self.uncertain_launches: set[str] = set()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Any,
    ) -> FlyClient:
        return cls(FlyConfig.from_env(environ, **overrides), transport=transport)

    def __repr__(self) -> str:
        return (
            f"FlyClient(org={self.config.org!r}, flaps={self.config.flaps_base_url!r}, "
            f"api={self.config.api_base_url!r})"
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> FlyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- plumbing -----------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        token = self.config.token
        return text.replace(token, "[redacted]") if token else text

    def _machines_url(self, app: str, *parts: str) -> str:
        url = f"{self.config.flaps_base_url}/v1/apps/{_seg(app)}/machines"
        return "/".join([url, *(_seg(p) for p in parts)])

    def _app_url(self, app: str, *parts: str) -> str:
        url = f"{self.config.flaps_base_url}/v1/apps/{_seg(app)}"
        return "/".join([url, *(_seg(p) for p in parts)])

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
        accept: Iterable[int] = (),
        cap: float | None = None,
        auth: httpx.Auth | None = None,
        mask: Iterable[str] = (),
    ) -> httpx.Response:
        """One HTTP exchange; a non-2xx status not in `accept` becomes a FlyAPIError (with
        each of `mask`, the secret values sent, replaced by ••• should Fly's text quote it, as
        sent or JSON-escaped)."""
        path = httpx.URL(url).path
        timeout = self.config.timeouts.httpx(read=read_timeout, cap=cap)
        operation = metrics.fly_operation(method, path)
        started = time.monotonic()
        status = "no answer"
        try:
            resp = await self._http.request(
                method,
                url,
                params=_drop_none(params or {}),
                json=json,
                headers=dict(headers or {}),
                timeout=timeout,
                auth=auth or self._auth,
            )
            status = str(resp.status_code)
        except httpx.TimeoutException as exc:
            status = "timeout"
            raise FlyTimeoutError(
                f"no answer in time ({type(exc).__name__})",
                method=method,
                path=path,
                request_sent=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from exc
        except httpx.DecodingError as exc:
            status = "bad answer"
            # The request reached Fly and was answered, so it may have acted.
            raise TransportError(
                f"the answer could not be decoded: {self._redact(str(exc))}",
                method=method,
                path=path,
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                f"{type(exc).__name__}: {self._redact(str(exc)) or 'transport failure'}",
                method=method,
                path=path,
                request_sent=not isinstance(exc, httpx.ConnectError),
            ) from exc
        finally:
            metrics.FLY_CALLS.labels(operation, status).inc()
            metrics.FLY_LATENCY.labels(operation).observe(time.monotonic() - started)
        if resp.is_success or resp.status_code in set(accept):
            return resp
        raise self._error_from(method, path, resp, mask)

    def _error_from(
        self, method: str, path: str, resp: httpx.Response, mask: Iterable[str] = ()
    ) -> FlyAPIError:
        message, code = "", None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("error") or body.get("message") or "")
            code = body.get("status") if isinstance(body.get("status"), str) else None
        if not message:
            message = resp.text.strip()[:300] or resp.reason_phrase or "request failed"
        cls = error_class_for(resp.status_code)
        if resp.status_code == 409 and ("/lease" in path or "lease" in message.lower()):
            cls = LeaseHeldError
        quoted = {form for value in mask if value for form in written_forms(value)}
        for form in sorted(quoted, key=len, reverse=True):
            message = message.replace(form, "•••")
        return cls(
            self._redact(message),
            method=method,
            path=path,
            status=resp.status_code,
            request_id=resp.headers.get(REQUEST_ID_HEADER),
            error_code=code,
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
        )

    async def _call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        read_timeout: float | None = None,
        accept: Iterable[int] = (),
        budget: float | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """One logical call with retries. Non-idempotent calls are resent only when Fly
        surely did not act on the previous try (429, connection refused)."""
        policy = self.config.retry if budget is None else replace(self.config.retry, budget=budget)
        accepted = tuple(accept)

        async def attempt(remaining: float) -> httpx.Response:
            return await self._send_once(
                method,
                url,
                params=params,
                json=json,
                headers=headers,
                read_timeout=read_timeout,
                accept=accepted,
                cap=remaining,
                auth=auth,
            )

        return await with_retries(
            attempt, policy, retry_if=is_transient if idempotent else is_safe_to_resend
        )

    def _json(self, method: str, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError as exc:
            raise TransportError(
                f"expected JSON, got {resp.headers.get('content-type', 'no content type')}",
                method=method,
                path=resp.request.url.path,
                status=resp.status_code,
                request_id=resp.headers.get(REQUEST_ID_HEADER),
            ) from exc

    def _parse(self, resp: httpx.Response, model: type[M], data: Any) -> M:
        """`data` as `model`; an answer of the wrong shape is a FlyAPIError, not a crash."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise FlyAPIError(
                f"unexpected answer for {model.__name__}: {exc.error_count()} field(s) wrong, "
                f"first at {'.'.join(str(x) for x in exc.errors()[0]['loc']) or 'top level'}",
                method=resp.request.method,
                path=resp.request.url.path,
                status=resp.status_code,
                request_id=resp.headers.get(REQUEST_ID_HEADER),
            ) from None

    @staticmethod
    def _nonce(lease_nonce: str | None) -> dict[str, str]:
        return {LEASE_NONCE_HEADER: lease_nonce} if lease_nonce else {}

    # --- apps ---------------------------------------------------------------------------

    async def get_app(self, app: str) -> App:
        resp = await self._call("GET", self._app_url(app))
        return self._parse(resp, App, self._json("GET", resp))

    async def list_apps(self, org: str | None = None) -> list[App]:
        url = f"{self.config.flaps_base_url}/v1/apps"
        resp = await self._call("GET", url, params={"org_slug": org or self.config.org})
        body = self._json("GET", resp)
        items = body.get("apps", []) if isinstance(body, dict) else body
        return [self._parse(resp, App, a) for a in items or []]

    async def create_app(self, name: str, org: str | None = None) -> App:
        """Create the app in the org (Machines API `POST /v1/apps`). An app name Fly already
        has answers 422 (`name_taken`), raised as a FlyAPIError with that error code. Sent
        again only when Fly surely did not act (429, connection refused)."""
        body = {"app_name": name, "org_slug": org or self.config.org}
        resp = await self._call(
            "POST", f"{self.config.flaps_base_url}/v1/apps", json=body, idempotent=False
        )
        data = self._json("POST", resp)
        return self._parse(resp, App, {"name": name, **(data if isinstance(data, dict) else {})})

    async def list_ip_assignments(self, app: str) -> list[IPAssignment]:
        resp = await self._call("GET", self._app_url(app, "ip_assignments"))
        body = self._json("GET", resp)
        items = body.get("ips", []) if isinstance(body, dict) else body
        return [self._parse(resp, IPAssignment, i) for i in items or []]

    async def assign_ip(
        self, app: str, kind: str, *, region: str | None = None, org: str | None = None
    ) -> IPAssignment:
        """Allocate an address: `shared_v4`, `v6`, `v4` (dedicated, billed), `private_v6`…
        A lost answer is settled by listing: an address of that kind already there is the
        answer, so a retry never allocates a second one."""
        url = self._app_url(app, "ip_assignments")
        body = _drop_none({"type": kind, "region": region, "org_slug": org})
        before = {i.ip for i in await self.list_ip_assignments(app) if i.type == kind}

        async def attempt(remaining: float) -> IPAssignment:
            try:
                resp = await self._send_once("POST", url, json=body, cap=remaining)
            except FlyAPIError as exc:
                if not is_ambiguous(exc):
                    raise
                with contextlib.suppress(FlyAPIError):
                    for item in await self.list_ip_assignments(app):
                        if item.type == kind and item.ip not in before:
                            return item
                raise
            return self._parse(resp, IPAssignment, self._json("POST", resp))

        return await with_retries(attempt, self.config.retry, retry_if=is_transient)

    # --- logs (api.fly.io) ----------------------------------------------------------------

    async def get_app_logs(
        self,
        app: str,
        *,
        next_token: str = "",
        instance: str | None = None,
        region: str | None = None,
    ) -> LogPage:
        """One page of flyctl's polling endpoint: the lines after `next_token` (from the
        oldest Fly keeps when empty), and the token to ask with next."""
        resp = await self._call(
            "GET",
            f"{self.config.api_base_url}/api/v1/apps/{_seg(app)}/logs",
            params={"next_token": next_token, "instance": instance or "", "region": region or ""},
        )
        body = self._json("GET", resp)
        if not isinstance(body, dict):
            body = {}
        entries = []
        for item in body.get("data") or []:
            attributes = item.get("attributes") if isinstance(item, dict) else None
            if isinstance(attributes, dict):
                entries.append(
                    self._parse(resp, LogEntry, {"id": str(item.get("id") or ""), **attributes})
                )
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        return LogPage(entries=entries, next_token=str((meta or {}).get("next_token") or ""))

    async def recent_logs(
        self,
        app: str,
        *,
        lines: int,
        instance: str | None = None,
        region: str | None = None,
        max_pages: int = 100,
    ) -> list[LogEntry]:
        """The newest `lines` lines, oldest first: pages are read until Fly has no more
        (an empty page, or the token stops moving), keeping only the tail."""
        kept: collections.deque[LogEntry] = collections.deque(maxlen=max(1, lines))
        token = ""
        for _ in range(max_pages):
            page = await self.get_app_logs(app, next_token=token, instance=instance, region=region)
            kept.extend(page.entries)
            if not page.entries or not page.next_token or page.next_token == token:
                break
            token = page.next_token
        return list(kept)

    # --- volumes ------------------------------------------------------------------------

    async def list_volumes(self, app: str) -> list[Volume]:
        resp = await self._call("GET", self._app_url(app, "volumes"))
        return [self._parse(resp, Volume, v) for v in self._json("GET", resp) or []]

    # --- machines -----------------------------------------------------------------------

    async def list_machines_page(
        self,
        app: str,
        *,
        region: str | None = None,
        state: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> MachinePage:
        params: dict[str, Any] = {
            "region": region,
            "state": state if state is None or isinstance(state, str) else ",".join(state),
            "include_deleted": "true" if include_deleted else None,
            "limit": limit,
            "cursor": cursor,
        }
        for key, value in (metadata or {}).items():
            params[f"metadata.{key}"] = value
        resp = await self._call("GET", self._machines_url(app), params=params)
        machines = [self._parse(resp, Machine, m) for m in self._json("GET", resp) or []]
        return MachinePage(machines=machines, next_cursor=resp.headers.get(NEXT_CURSOR_HEADER))

    async def list_machines(
        self,
        app: str,
        *,
        region: str | None = None,
        state: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        page_size: int | None = None,
    ) -> list[Machine]:
        """Every matching machine, following `fly-next-cursor` page after page."""
        machines: list[Machine] = []
        cursor: str | None = None
        while True:
            page = await self.list_machines_page(
                app,
                region=region,
                state=state,
                metadata=metadata,
                include_deleted=include_deleted,
                limit=page_size,
                cursor=cursor,
            )
            machines.extend(page.machines)
            if not page.next_cursor or page.next_cursor == cursor:
                return machines
            cursor = page.next_cursor

    async def get_machine(self, app: str, machine_id: str) -> Machine:
        resp = await self._call("GET", self._machines_url(app, machine_id))
        return self._parse(resp, Machine, self._json("GET", resp))

    async def create_machine(
        self,
        app: str,
        config: MachineConfig | Mapping[str, Any],
        *,
        region: str | None = None,
        name: str | None = None,
        lease_ttl: int | None = None,
        skip_launch: bool | None = None,
        skip_service_registration: bool | None = None,
        min_secrets_version: int | None = None,
        launch_id: str | None = None,
    ) -> Machine:
        """Create a machine. A unique launch id goes into its metadata (`flybot_launch_id`);
        after an ambiguous failure the client looks for a machine carrying it and returns that
        one instead of creating a second. A machine found that way has no lease nonce."""
        launch_id = launch_id or uuid.uuid4().hex
        cfg = _config_json(config)
        cfg["metadata"] = {**(cfg.get("metadata") or {}), LAUNCH_ID_KEY: launch_id}
        body = _drop_none(
            {
                "config": cfg,
                "region": region,
                "name": name,
                "lease_ttl": lease_ttl,
                "skip_launch": skip_launch,
                "skip_service_registration": skip_service_registration,
                "min_secrets_version": min_secrets_version,
            }
        )
        url = self._machines_url(app)

        async def attempt(remaining: float) -> Machine:
            try:
                resp = await self._send_once("POST", url, json=body, cap=remaining)
            except FlyAPIError as exc:
                if not is_ambiguous(exc):
                    raise
                existing = await self._find_launched(app, launch_id, exc, remaining)
                if existing is not None:
                    return existing
                self.uncertain_launches.add(launch_id)
                raise
            return self._parse(resp, Machine, self._json("POST", resp))

        return await with_retries(attempt, self.config.retry, retry_if=is_transient)

    async def _find_launched(
        self, app: str, launch_id: str, cause: FlyAPIError, budget: float
    ) -> Machine | None:
        """The machine an ambiguous create made, if any. Fly's listing lags behind a create,
        so one look is not enough: it looks again until `config.listing_lag` has passed."""
        deadline = time.monotonic() + self.config.listing_lag
        pause = min(0.1, self.config.listing_lag / 4 or 0.1)
        while True:
            try:
                resp = await self._call(
                    "GET",
                    self._machines_url(app),
                    params={f"metadata.{LAUNCH_ID_KEY}": launch_id},
                    budget=max(budget, 0.5),
                )
            except FlyAPIError as exc:
                # Unknown whether the create happened: resending could make a second machine.
                raise FlyAPIError(
                    f"machine create may have succeeded (launch id {launch_id}) but checking "
                    f"failed: {exc.message}",
                    method=cause.method,
                    path=cause.path,
                    status=cause.status,
                    request_id=cause.request_id,
                ) from exc
            for item in self._json("GET", resp) or []:
                machine = self._parse(resp, Machine, item)
                if machine.metadata.get(LAUNCH_ID_KEY) == launch_id:
                    log.info(
                        "machine create answered %s but %s exists: using it",
                        cause.status,
                        machine.id,
                    )
                    return machine
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))  # the last look is at the deadline itself
            pause = min(pause * 2, 0.5)

    async def update_machine(
        self,
        app: str,
        machine_id: str,
        config: MachineConfig | Mapping[str, Any],
        *,
        current_version: str | None = None,
        lease_nonce: str | None = None,
        min_secrets_version: int | None = None,
        skip_launch: bool | None = None,
        skip_service_registration: bool | None = None,
    ) -> Machine:
        """Replace the machine's WHOLE config (Fly has no partial update). With
        `current_version`, Fly answers 409 if the machine changed meanwhile.

        An update is not sent twice blindly: after an ambiguous failure (the answer was lost)
        the machine is read back, and if it already carries the config sent (and, with
        `current_version`, a newer version) that is the answer; if it is unchanged the update
        is sent again; if someone else changed it, ConflictError."""
        sent = _config_json(config)
        body = _drop_none(
            {
                "config": sent,
                "current_version": current_version,
                "min_secrets_version": min_secrets_version,
                "skip_launch": skip_launch,
                "skip_service_registration": skip_service_registration,
            }
        )
        url = self._machines_url(app, machine_id)
        headers = self._nonce(lease_nonce)
        uncertain = False

        async def attempt(remaining: float) -> Machine:
            nonlocal uncertain
            try:
                resp = await self._send_once("POST", url, json=body, headers=headers, cap=remaining)
            except ConflictError as exc:
                if not uncertain or isinstance(exc, LeaseHeldError):
                    raise
                applied = await self._applied_update(app, machine_id, sent, current_version)
                if applied is None:
                    raise
                return applied
            except FlyAPIError as exc:
                if not is_ambiguous(exc):
                    raise
                uncertain = True
                applied = await self._applied_update(app, machine_id, sent, current_version)
                if applied is not None:
                    return applied
                raise
            return self._parse(resp, Machine, self._json("POST", resp))

        return await with_retries(attempt, self.config.retry, retry_if=is_transient)

    async def _applied_update(
        self, app: str, machine_id: str, sent: Mapping[str, Any], current_version: str | None
    ) -> Machine | None:
        """After a lost answer: the machine if the update took effect, None if it did not;
        ConflictError when the machine changed in another way meanwhile."""
        try:
            machine = await self.get_machine(app, machine_id)
        except FlyAPIError:
            return None  # unknown: the resend settles it (409 on our own change is handled)
        carries = machine.config is not None and _contains(machine.config.to_json(), sent)
        if current_version is None:
            return machine if carries else None
        if machine.current_version == current_version:
            return None
        if carries:
            return machine
        raise ConflictError(
            f"machine {machine_id} changed meanwhile (version {current_version} → "
            f"{machine.current_version}), not by this update",
            method="POST",
            path=httpx.URL(self._machines_url(app, machine_id)).path,
            status=409,
        )

    async def start_machine(
        self, app: str, machine_id: str, *, lease_nonce: str | None = None
    ) -> None:
        """Start it. After a lost answer the machine is read back: already starting or
        started means the start took, so it is not sent again."""
        url = self._machines_url(app, machine_id, "start")

        async def attempt(remaining: float) -> None:
            try:
                await self._send_once("POST", url, headers=self._nonce(lease_nonce), cap=remaining)
            except FlyAPIError as exc:
                if not is_ambiguous(exc):
                    raise
                with contextlib.suppress(FlyAPIError):
                    machine = await self.get_machine(app, machine_id)
                    if machine.state in ("starting", "started"):
                        return
                raise

        await with_retries(attempt, self.config.retry, retry_if=is_transient)

    async def stop_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        lease_nonce: str | None = None,
    ) -> None:
        # Stopping a stopping or stopped machine succeeds: resent freely.
        body = _drop_none({"signal": signal, "timeout": timeout})
        await self._call(
            "POST",
            self._machines_url(app, machine_id, "stop"),
            json=body or None,
            headers=self._nonce(lease_nonce),
        )

    async def restart_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        lease_nonce: str | None = None,
    ) -> None:
        """Restart it once. The newest event is noted first (one extra call), so after a lost
        answer a restart event newer than it, by Fly's own clock, shows the restart took."""
        before = await self.list_events(app, machine_id, limit=1)
        since = max((e.timestamp or 0 for e in before), default=0)
        url = self._machines_url(app, machine_id, "restart")
        params = {"signal": signal, "timeout": timeout}

        async def attempt(remaining: float) -> None:
            try:
                await self._send_once(
                    "POST", url, params=params, headers=self._nonce(lease_nonce), cap=remaining
                )
            except FlyAPIError as exc:
                if not is_ambiguous(exc):
                    raise
                with contextlib.suppress(FlyAPIError):
                    events = await self.list_events(app, machine_id, limit=10)
                    if any(e.type == "restart" and (e.timestamp or 0) > since for e in events):
                        return
                raise

        await with_retries(attempt, self.config.retry, retry_if=is_transient)

    async def delete_machine(
        self, app: str, machine_id: str, *, force: bool = False, lease_nonce: str | None = None
    ) -> None:
        """Destroy a machine. Fly destroys asynchronously: wait for `destroyed` if it matters.
        Resending is safe; a 404 after a lost answer means the first try did it."""
        url = self._machines_url(app, machine_id)
        uncertain = False

        async def attempt(remaining: float) -> None:
            nonlocal uncertain
            try:
                await self._send_once(
                    "DELETE",
                    url,
                    params={"force": "true" if force else None},
                    headers=self._nonce(lease_nonce),
                    cap=remaining,
                )
            except NotFoundError:
                if not uncertain:
                    raise
            except FlyAPIError as exc:
                uncertain = uncertain or is_ambiguous(exc)
                raise

        await with_retries(attempt, self.config.retry, retry_if=is_transient)

    async def cordon_machine(
        self, app: str, machine_id: str, *, lease_nonce: str | None = None
    ) -> None:
        """Take it out of the proxy's rotation. Cordoning twice is a no-op: resent freely."""
        await self._call(
            "POST", self._machines_url(app, machine_id, "cordon"), headers=self._nonce(lease_nonce)
        )

    async def uncordon_machine(
        self, app: str, machine_id: str, *, lease_nonce: str | None = None
    ) -> None:
        await self._call(
            "POST",
            self._machines_url(app, machine_id, "uncordon"),
            headers=self._nonce(lease_nonce),
        )

    async def wait_for_state(
        self,
        app: str,
        machine_id: str,
        state: str | Sequence[str] = "started",
        *,
        version: str | None = None,
        timeout: float = 60.0,
        from_event_id: str | None = None,
    ) -> WaitResult:
        """Block until the machine reaches `state` (started, stopped, suspended, destroyed,
        failed, settled) or `timeout` seconds pass, calling Fly's wait (≤ 60 s a call) again
        as often as needed. Raises FlyTimeoutError at the deadline."""
        states = state if isinstance(state, str) else ",".join(state)
        url = self._machines_url(app, machine_id, "wait")
        margin = self.config.timeouts.wait_margin
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FlyTimeoutError(
                    f"machine {machine_id} did not reach {states} within {timeout:g}s",
                    method="GET",
                    path=httpx.URL(url).path,
                )
            # Fly takes whole seconds; rounding down keeps the last call from overshooting.
            per_call = max(1, min(MAX_WAIT_PER_CALL, math.floor(remaining)))
            resp = await self._call(
                "GET",
                url,
                params={
                    "state": states,
                    "timeout": per_call,
                    "version": version,
                    "from_event_id": from_event_id,
                },
                read_timeout=per_call + margin,
                budget=remaining + margin,
                accept=(408,),  # Fly's "not yet": ask again until our own deadline
            )
            if resp.status_code == 408:
                continue
            body = self._json("GET", resp) if resp.content else {}
            return self._parse(resp, WaitResult, body or {"ok": True, "state": states})

    async def list_events(
        self, app: str, machine_id: str, *, limit: int | None = None
    ) -> list[MachineEvent]:
        resp = await self._call(
            "GET", self._machines_url(app, machine_id, "events"), params={"limit": limit}
        )
        return [self._parse(resp, MachineEvent, e) for e in self._json("GET", resp) or []]

    # --- leases -------------------------------------------------------------------------

    def _lease(self, resp: httpx.Response) -> Lease:
        body = self._json(resp.request.method, resp)
        # Fly wraps a lease as {"status": "success", "data": {...}}; older docs show it bare.
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        return self._parse(resp, Lease, body)

    async def acquire_lease(
        self,
        app: str,
        machine_id: str,
        *,
        ttl: int = 13,
        description: str | None = None,
        budget: float | None = None,
    ) -> Lease:
        """Take the machine's lease; LeaseHeldError naming the holder when someone else
        holds it.

        Give a `description` no other holder uses: then an ambiguous failure (the lease may
        have been granted and the answer lost) is settled by reading the lease back: ours is
        adopted, none means ask again, another holder's is a LeaseHeldError. Without one, an
        ambiguous failure is not retried (a resend would 409 on our own lease)."""
        url = self._machines_url(app, machine_id, "lease")
        body = _drop_none({"ttl": ttl, "description": description})
        policy = self.config.retry if budget is None else replace(self.config.retry, budget=budget)
        uncertain = False

        async def attempt(remaining: float) -> Lease:
            nonlocal uncertain
            try:
                resp = await self._send_once("POST", url, json=body, cap=remaining)
            except LeaseHeldError as exc:
                held = await self._lease_or_none(app, machine_id, remaining)
                if uncertain and held is not None and held.description == description:
                    return held  # our own lease, granted by a try whose answer was lost
                raise self._held(exc, held) from None
            except FlyAPIError as exc:
                if not is_ambiguous(exc):
                    raise
                if description is None:
                    raise FlyAPIError(
                        f"the lease may have been granted (no answer: {exc.message})",
                        method=exc.method,
                        path=exc.path,
                        status=exc.status,
                        request_id=exc.request_id,
                    ) from exc
                uncertain = True
                held = await self._lease_or_none(app, machine_id, remaining)
                if held is not None and held.description == description:
                    return held
                if held is not None and (held.nonce or held.owner):
                    raise self._held(exc, held) from None
                raise
            return self._lease(resp)

        return await with_retries(attempt, policy, retry_if=is_transient)

    async def _lease_or_none(self, app: str, machine_id: str, budget: float) -> Lease | None:
        try:
            resp = await self._call(
                "GET", self._machines_url(app, machine_id, "lease"), budget=max(budget, 0.5)
            )
        except NotFoundError:
            return None
        except FlyAPIError:
            return None  # unknown; the caller's resend and its 409 settle it
        lease = self._lease(resp)
        return lease if lease.nonce or lease.owner else None

    @staticmethod
    def _held(cause: FlyAPIError, lease: Lease | None) -> LeaseHeldError:
        if lease is None:
            return (
                cause
                if isinstance(cause, LeaseHeldError)
                else LeaseHeldError(cause.message, method=cause.method, path=cause.path, status=409)
            )
        until = ""
        if isinstance(lease.expires_at, int):
            until = f" until {datetime.fromtimestamp(lease.expires_at, UTC):%H:%M:%S} UTC"
        error = LeaseHeldError(
            f"leased by {lease.owner or 'someone'} ({lease.description or 'no description'})"
            + until,
            method=cause.method,
            path=cause.path,
            status=409,
            request_id=cause.request_id,
        )
        error.holder = lease
        return error

    async def refresh_lease(
        self, app: str, machine_id: str, nonce: str, *, ttl: int = 13, budget: float | None = None
    ) -> Lease:
        """Extend our lease. `budget` bounds the whole call, retries and reads included: a
        refresh that answers after the lease ran out is no use."""
        resp = await self._call(
            "POST",
            self._machines_url(app, machine_id, "lease"),
            json={"ttl": ttl},
            headers=self._nonce(nonce),
            read_timeout=budget,
            budget=budget,
        )
        return self._lease(resp)

    async def release_lease(self, app: str, machine_id: str, nonce: str) -> None:
        """Let it go. A lease (or machine) already gone is what was wanted."""
        with contextlib.suppress(NotFoundError):
            await self._call(
                "DELETE", self._machines_url(app, machine_id, "lease"), headers=self._nonce(nonce)
            )

    async def get_lease(self, app: str, machine_id: str) -> Lease | None:
        """The current lease, or None when the machine is not leased."""
        try:
            resp = await self._call("GET", self._machines_url(app, machine_id, "lease"))
        except NotFoundError:
            return None
        lease = self._lease(resp)
        return lease if lease.nonce or lease.owner else None

    # --- metadata -----------------------------------------------------------------------

    async def get_metadata(self, app: str, machine_id: str) -> dict[str, str]:
        resp = await self._call("GET", self._machines_url(app, machine_id, "metadata"))
        return {str(k): str(v) for k, v in (self._json("GET", resp) or {}).items()}

    async def set_metadata(self, app: str, machine_id: str, key: str, value: str) -> None:
        await self._call(
            "POST", self._machines_url(app, machine_id, "metadata", key), json={"value": value}
        )

    async def delete_metadata(self, app: str, machine_id: str, key: str) -> None:
        await self._call("DELETE", self._machines_url(app, machine_id, "metadata", key))

    async def update_metadata(
        self,
        app: str,
        machine_id: str,
        values: Mapping[str, str | None],
        *,
        machine_version: str | None = None,
    ) -> None:
        """Set and remove (None) several keys in one PATCH; 412 (PreconditionFailedError)
        when `machine_version` no longer matches."""
        body = _drop_none({"metadata": dict(values), "machine_version": machine_version})
        await self._call("PATCH", self._machines_url(app, machine_id, "metadata"), json=body)

    # --- secrets ------------------------------------------------------------------------

    async def list_secrets(self, app: str) -> list[Secret]:
        """Names and digests only: values are never requested."""
        resp = await self._call("GET", self._app_url(app, "secrets"))
        body = self._json("GET", resp)
        items = body.get("secrets", []) if isinstance(body, dict) else body
        return [self._parse(resp, Secret, s) for s in items or []]

    async def set_secrets(self, app: str, values: Mapping[str, str | None]) -> SecretsSetResult:
        """Set (str) and unset (None) secrets in one call. Pass the returned `version` as
        `min_secrets_version` on the next machine create/update so machines see them.

        The names' digests are read first (one extra call): after a lost answer, digests
        that all moved as asked show the set took (it is not sent again); none moved means
        send again (setting a value equal to the old one is harmless to repeat); some moved
        is reported, never resent."""
        before = {s.name: s.digest for s in await self.list_secrets(app)}
        url = self._app_url(app, "secrets")
        sent = [v for v in values.values() if v]

        async def attempt(remaining: float) -> SecretsSetResult:
            try:
                resp = await self._send_once(
                    "POST", url, json={"values": dict(values)}, cap=remaining, mask=sent
                )
            except FlyAPIError as exc:
                if not is_ambiguous(exc):
                    raise
                try:
                    after = {s.name: s.digest for s in await self.list_secrets(app)}
                except FlyAPIError:
                    raise exc from None
                moved = {
                    name
                    for name, value in values.items()
                    if (name not in after if value is None else after.get(name) != before.get(name))
                }
                if moved == set(values):
                    return SecretsSetResult(secrets=[], version=None)
                if moved:
                    raise FlyAPIError(
                        f"secrets {', '.join(sorted(moved))} changed but not "
                        f"{', '.join(sorted(set(values) - moved))}: check them before retrying",
                        method=exc.method,
                        path=exc.path,
                        status=exc.status,
                        request_id=exc.request_id,
                    ) from exc
                raise
            return self._parse(resp, SecretsSetResult, self._json("POST", resp))

        return await with_retries(attempt, self.config.retry, retry_if=is_transient)

    async def unset_secrets(self, app: str, names: Iterable[str]) -> SecretsSetResult:
        return await self.set_secrets(app, dict.fromkeys(names))

    # --- certificates -------------------------------------------------------------------

    async def list_certificates(self, app: str) -> list[Certificate]:
        certs: list[Certificate] = []
        cursor: str | None = None
        while True:
            resp = await self._call(
                "GET", self._app_url(app, "certificates"), params={"cursor": cursor}
            )
            body = self._json("GET", resp)
            items = body.get("certificates", []) if isinstance(body, dict) else body
            certs.extend(self._parse(resp, Certificate, c) for c in items or [])
            nxt = body.get("next_cursor") if isinstance(body, dict) else None
            if not nxt or nxt == cursor:
                return certs
            cursor = nxt

    async def add_certificate(self, app: str, hostname: str) -> Certificate:
        """Ask for a Let's Encrypt certificate; show the user `dns_requirements`."""
        resp = await self._call(
            "POST",
            self._app_url(app, "certificates", "acme"),
            json={"hostname": hostname},
            idempotent=False,
        )
        return self._parse(resp, Certificate, self._json("POST", resp))

    async def get_certificate(self, app: str, hostname: str) -> Certificate:
        resp = await self._call("GET", self._app_url(app, "certificates", hostname))
        return self._parse(resp, Certificate, self._json("GET", resp))

    async def check_certificate(self, app: str, hostname: str) -> Certificate:
        resp = await self._call("POST", self._app_url(app, "certificates", hostname, "check"))
        return self._parse(resp, Certificate, self._json("POST", resp))

    async def delete_certificate(self, app: str, hostname: str) -> None:
        await self._call("DELETE", self._app_url(app, "certificates", hostname))

    # --- releases (api.fly.io) ----------------------------------------------------------

    async def create_release(
        self,
        app: str,
        image: str,
        *,
        definition: Mapping[str, Any] | None = None,
        strategy: str = "rolling",
    ) -> Release:
        body = _drop_none(
            {
                "app_name": app,
                "image": image,
                "definition": dict(definition) if definition is not None else None,
                "strategy": strategy,
            }
        )
        resp = await self._call(
            "POST", f"{self.config.api_base_url}/api/v1/releases", json=body, idempotent=False
        )
        data = self._json("POST", resp)
        return self._parse(
            resp, Release, data.get("release", data) if isinstance(data, dict) else data
        )

    async def update_release(self, release_id: str, status: str) -> None:
        """status: running | complete | failed | interrupted."""
        await self._call(
            "PATCH",
            f"{self.config.api_base_url}/api/v1/releases/{_seg(release_id)}",
            json={"status": status},
        )

    async def list_releases(self, app: str, *, limit: int | None = None) -> list[Release]:
        resp = await self._call(
            "GET",
            f"{self.config.api_base_url}/api/v1/apps/{_seg(app)}/releases",
            params={"limit": limit},
        )
        body = self._json("GET", resp)
        if isinstance(body, dict):
            body = body.get("releases", body.get("data", []))
        return [self._parse(resp, Release, r) for r in body or []]

    async def image_digest(self, app: str, ref: str) -> str | None:
        """Fly's image look-up, as flyctl resolves `--image`: the digest `ref` names now, or
        None when Fly knows no such image. FlyAPIError when the look-up itself fails."""
        data = await self.graphql(_IMAGE_QUERY, {"app": app, "ref": ref})
        image = (data.get("app") or {}).get("image")
        digest = image.get("digest") if isinstance(image, dict) else None
        return str(digest) if digest else None

    async def registry_digest(self, registry: str, repository: str, reference: str) -> str | None:
        """The registry's own answer for `repository:reference` (a tag or a digest): the
        `Docker-Content-Digest` of its manifest, or None on 404. Fly's registry takes the
        API token as a password; `config.registry_base_url`, when set, stands in for every
        registry (the simulator)."""
        base = self.config.registry_base_url or f"https://{registry}"
        url = f"{base.rstrip('/')}/v2/{repository}/manifests/{_seg(reference)}"
        token = normalize_token(self.config.token)
        resp = await self._call(
            "HEAD",
            url,
            headers={"Accept": _MANIFEST_TYPES},
            accept=(404,),
            auth=httpx.BasicAuth("x", token) if token else None,
        )
        if resp.status_code == 404:
            return None
        digest = resp.headers.get("docker-content-digest")
        if not digest:
            raise FlyAPIError(
                "the registry answered without a Docker-Content-Digest",
                method="HEAD",
                path=httpx.URL(url).path,
                status=resp.status_code,
            )
        return digest

    async def redis_add_ons(self, app: str) -> list[dict[str, Any]]:
        """The app's Upstash Redis databases (GraphQL `addOns(type: upstash_redis)`), as Fly
        describes them: name, status, primaryRegion, readRegions, addOnPlan.displayName."""
        data = await self.graphql(_ADD_ONS_QUERY, {"appName": app})
        add_ons = (data.get("app") or {}).get("addOns") or {}
        return [n for n in add_ons.get("nodes") or [] if isinstance(n, dict)]

    async def current_release(self, app: str) -> Release | None:
        data = await self.graphql(_CURRENT_RELEASE_QUERY, {"appName": app})
        app_data = data.get("app") or {}
        current = app_data.get("currentReleaseUnprocessed") if isinstance(app_data, dict) else None
        if not current:
            return None
        try:
            return Release.model_validate(current)
        except ValidationError:
            raise FlyAPIError(
                "unexpected answer for Release from GraphQL",
                method="POST",
                path=httpx.URL(f"{self.config.api_base_url}/graphql").path,
            ) from None

    async def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        """Run a GraphQL query (pass idempotent=False for a mutation); returns `data`."""
        url = f"{self.config.api_base_url}/graphql"
        resp = await self._call(
            "POST",
            url,
            json={"query": query, "variables": dict(variables or {})},
            idempotent=idempotent,
        )
        body = self._json("POST", resp)
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            first: dict[str, Any] = (
                errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
            )
            code = str((first.get("extensions") or {}).get("code") or "")
            cls = NotFoundError if code == "NOT_FOUND" else FlyAPIError
            raise cls(
                self._redact(str(first.get("message") or "GraphQL error")),
                method="POST",
                path=httpx.URL(url).path,
                status=resp.status_code,
                request_id=resp.headers.get(REQUEST_ID_HEADER),
                error_code=code or None,
            )
        data = body.get("data") if isinstance(body, dict) else None
        return data or {}

    # --- prometheus ---------------------------------------------------------------------

    async def prom_query(
        self, query: str, *, at: datetime | float | None = None
    ) -> list[PromSeries]:
        """An instant query; each series has one sample."""
        params = {"query": query, "time": _unix(at) if at is not None else None}
        return await self._prom("query", params)

    async def prom_query_range(
        self,
        query: str,
        *,
        start: datetime | float,
        end: datetime | float,
        step: float | str,
    ) -> list[PromSeries]:
        params = {"query": query, "start": _unix(start), "end": _unix(end), "step": str(step)}
        return await self._prom("query_range", params)

    async def _prom(self, endpoint: str, params: Mapping[str, Any]) -> list[PromSeries]:
        url = f"{self.config.prometheus_url}/api/v1/{endpoint}"
        resp = await self._call("GET", url, params=params)
        body = self._json("GET", resp)
        if not isinstance(body, dict) or body.get("status") != "success":
            message = body.get("error") if isinstance(body, dict) else None
            raise FlyAPIError(
                self._redact(str(message or "Prometheus query failed")),
                method="GET",
                path=httpx.URL(url).path,
                status=resp.status_code,
                request_id=resp.headers.get(REQUEST_ID_HEADER),
            )
        series: list[PromSeries] = []
        for item in (body.get("data") or {}).get("result") or []:
            pairs = item.get("values") or ([item["value"]] if "value" in item else [])
            series.append(
                PromSeries(
                    metric={str(k): str(v) for k, v in (item.get("metric") or {}).items()},
                    samples=[PromSample(timestamp=float(t), value=float(v)) for t, v in pairs],
                )
            )
        return series
