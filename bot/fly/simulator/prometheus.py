"""A small PromQL evaluator over the simulator's series, answering in Prometheus' JSON.

Supported: selectors with label matchers (`=`, `!=`, `=~`, `!~`); range functions `rate`,
`irate`, `increase`, `delta`, `avg_over_time`, `min_over_time`, `max_over_time`,
`last_over_time` over `selector[duration]`; aggregations `sum`, `avg`, `min`, `max`, `count`
with `by (...)` / `without (...)` before or after the parenthesis; plain numbers. Not
supported: binary operators, `offset`, `@`, subqueries, other functions (400 bad_data).

Series: `fly_edge_data_out` and `fly_edge_data_in` (counters, bytes; labels app, region),
`fly_instance_up` (app, region, instance), `fly_volume_size_bytes` and `fly_volume_used_pct`
(app, region, volume), and the proxy's HTTP series (traffic.py): `fly_app_http_responses_count`
(app, region, instance, status) and the `fly_app_http_response_time_seconds` histogram.
Samples older than the retention (`SimState.prom_retention_s`, 15 days as at Fly) are gone;
`POST /__sim/prometheus` sets it and an app's egress rates."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.fly.simulator.machines import SimMachine
from bot.fly.simulator.state import DEFAULT_EGRESS_BPS, SimState
from bot.fly.simulator.traffic import http_series

Labels = dict[str, str]
ValueAt = Callable[[float], float | None]
MAX_POINTS = 11_000
DAY = 86_400.0


class PromError(Exception):
    """A query Prometheus would refuse: answered as 400 `bad_data`."""


@dataclass(frozen=True)
class Series:
    labels: Labels
    value_at: ValueAt


# --- the series ---------------------------------------------------------------------------


def _counter(base_bps: float, t0: float, phase: float) -> ValueAt:
    """Bytes served since t0 at a rate of base*(1 + 0.5*sin(day cycle)): never decreasing."""
    w = 2 * math.pi / DAY

    def value(t: float) -> float | None:
        if t < t0:
            return 0.0
        wave = (math.cos(w * (t0 - phase)) - math.cos(w * (t - phase))) / w
        return float(round(base_bps * ((t - t0) + 0.5 * wave)))

    return value


def _gauge(value: float, since: float, until: float | None = None) -> ValueAt:
    def at(t: float) -> float | None:
        return value if since <= t and (until is None or t < until) else None

    return at


def collect_series(state: SimState, org_slug: str) -> list[Series]:
    state.advance_all()
    org = state.org(org_slug)
    out: list[Series] = []
    for app in state.apps.values():
        if app.org.slug != org.slug:
            continue
        regions = set(app.egress_bps) | {m.region for m in app.machines.values()}
        since = app.created_at if app.egress_since is None else app.egress_since
        for region in sorted(regions):
            base = app.egress_bps.get(region, DEFAULT_EGRESS_BPS)
            phase = float(zlib.crc32(region.encode()) % int(DAY))
            labels = {"app": app.name, "region": region}
            out.append(
                Series(
                    {"__name__": "fly_edge_data_out", **labels},
                    _counter(base, since, phase),
                )
            )
            out.append(
                Series(
                    {"__name__": "fly_edge_data_in", **labels},
                    _counter(base * 0.12, since, phase),
                )
            )
        for m in app.machines.values():
            out.append(
                Series(
                    {
                        "__name__": "fly_instance_up",
                        "app": app.name,
                        "region": m.region,
                        "instance": m.id,
                    },
                    _instance_up(m),
                )
            )
        for v in app.volumes:
            labels = {"app": app.name, "region": v.region, "volume": v.id}
            out.append(
                Series(
                    {"__name__": "fly_volume_size_bytes", **labels},
                    _gauge(float(v.size_gb * 1024**3), v.created_at),
                )
            )
            out.append(
                Series(
                    {"__name__": "fly_volume_used_pct", **labels}, _gauge(v.used_pct, v.created_at)
                )
            )
        out.extend(Series(labels, value_at) for labels, value_at in http_series(app))
    cutoff = state.now() - state.prom_retention_s
    return [Series(s.labels, _retained(s.value_at, cutoff)) for s in out]


def _instance_up(machine: SimMachine) -> ValueAt:
    """1 while the machine was started, 0 while it existed otherwise, from its state history
    (so a machine stopped last week reads 1 before and 0 after)."""

    def at(t: float) -> float | None:
        state = machine.state_at(t)
        if state is None or state == "destroyed":
            return None
        return 1.0 if state == "started" else 0.0

    return at


def _retained(value_at: ValueAt, cutoff: float) -> ValueAt:
    """Fly keeps metrics about 15 days: older samples are gone."""

    def at(t: float) -> float | None:
        return None if t < cutoff else value_at(t)

    return at


# --- parsing ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)(?![A-Za-z0-9_])
      | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>=~|!~|!=|=|[(){}\[\],])
    )""",
    re.VERBOSE,
)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "y": 365 * DAY}
AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count"})
RANGE_FUNCTIONS = frozenset(
    {
        "rate",
        "irate",
        "increase",
        "delta",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "last_over_time",
    }
)


def parse_duration(text: str) -> float:
    parts = re.findall(r"(\d+)(ms|[smhdwy])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise PromError(f"bad duration {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: Labels) -> bool:
        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        full = re.fullmatch(self.value, have) is not None
        return full if self.op == "=~" else not full


@dataclass(frozen=True)
class Selector:
    matchers: tuple[Matcher, ...]
    range_s: float | None = None


@dataclass(frozen=True)
class RangeCall:
    func: str
    selector: Selector


@dataclass(frozen=True)
class Aggregate:
    op: str
    expr: Node
    by: tuple[str, ...] | None
    without: tuple[str, ...] | None


@dataclass(frozen=True)
class Number:
    value: float


Node = Selector | RangeCall | Aggregate | Number


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise PromError(f"unexpected character at position {pos}: {text[pos : pos + 10]!r}")
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token = self.peek()
        if token is None or (value and token[1] != value) or (kind and token[0] != kind):
            want = value or kind
            raise PromError(f"expected {want!r}, got {token[1] if token else 'end of query'!r}")
        self.i += 1
        return token[1]

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise PromError(f"unsupported expression near {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def expr(self) -> Node:
        token = self.peek()
        if token is None:
            raise PromError("empty query")
        kind, value = token
        if kind == "number":
            self.i += 1
            return Number(float(value))
        if kind == "name" and value in AGGREGATIONS:
            return self.aggregate()
        if kind == "name" and value in RANGE_FUNCTIONS:
            self.i += 1
            self.take("(")
            selector = self.selector()
            self.take(")")
            if selector.range_s is None:
                raise PromError(f"{value}() needs a range vector like metric[5m]")
            return RangeCall(value, selector)
        if kind == "name" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][1] == "(":
            raise PromError(f"unsupported function {value}()")
        selector = self.selector()
        if selector.range_s is not None:
            raise PromError("a range vector must be inside a function such as rate()")
        return selector

    def aggregate(self) -> Aggregate:
        op = self.take(kind="name")
        by, without = self.grouping()
        self.take("(")
        inner = self.expr()
        self.take(")")
        if by is None and without is None:
            by, without = self.grouping()
        return Aggregate(op, inner, by, without)

    def grouping(self) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        token = self.peek()
        if token is None or token[1] not in ("by", "without"):
            return None, None
        word = self.take()
        self.take("(")
        labels: list[str] = []
        while self.peek() and self.peek()[1] != ")":  # type: ignore[index]
            labels.append(self.take(kind="name"))
            if self.peek() and self.peek()[1] == ",":  # type: ignore[index]
                self.take(",")
        self.take(")")
        return (tuple(labels), None) if word == "by" else (None, tuple(labels))

    def selector(self) -> Selector:
        matchers: list[Matcher] = []
        token = self.peek()
        if token and token[0] == "name":
            matchers.append(Matcher("__name__", "=", self.take()))
        if self.peek() and self.peek()[1] == "{":  # type: ignore[index]
            self.take("{")
            while self.peek() and self.peek()[1] != "}":  # type: ignore[index]
                label = self.take(kind="name")
                op = self.take(kind="op")
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromError(f"bad matcher operator {op!r}")
                raw = self.take(kind="string")
                matchers.append(
                    Matcher(label, op, bytes(raw[1:-1], "utf-8").decode("unicode_escape"))
                )
                if self.peek() and self.peek()[1] == ",":  # type: ignore[index]
                    self.take(",")
            self.take("}")
        if not matchers:
            raise PromError("expected a metric name or {label matchers}")
        range_s = None
        if self.peek() and self.peek()[1] == "[":  # type: ignore[index]
            self.take("[")
            range_s = parse_duration(self.take(kind="duration"))
            self.take("]")
        return Selector(tuple(matchers), range_s)


def parse_query(text: str) -> Node:
    return _Parser(text).parse()


# --- evaluation ---------------------------------------------------------------------------

Vector = list[tuple[Labels, float]]


def _select(series: Sequence[Series], selector: Selector) -> list[Series]:
    return [s for s in series if all(m.matches(s.labels) for m in selector.matchers)]


def _range_value(func: str, s: Series, t: float, window: float) -> float | None:
    end = s.value_at(t)
    if end is None:
        return None
    if func in ("rate", "increase", "delta", "irate"):
        start = s.value_at(t - window)
        if start is None:
            return None
        change = end - start
        if func == "irate":
            before = s.value_at(t - min(window, 60.0))
            return (end - (before if before is not None else start)) / min(window, 60.0)
        return change / window if func == "rate" else change
    step = max(window / 60, 1.0)
    samples = [v for i in range(61) if (v := s.value_at(t - window + i * step)) is not None]
    if not samples:
        return None
    if func == "avg_over_time":
        return sum(samples) / len(samples)
    if func == "min_over_time":
        return min(samples)
    if func == "max_over_time":
        return max(samples)
    return samples[-1]


def _without_name(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if k != "__name__"}


def evaluate(node: Node, series: Sequence[Series], t: float) -> Vector | float:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Selector):
        return [(s.labels, v) for s in _select(series, node) if (v := s.value_at(t)) is not None]
    if isinstance(node, RangeCall):
        window = node.selector.range_s or 0.0
        out: Vector = []
        for s in _select(series, node.selector):
            value = _range_value(node.func, s, t, window)
            if value is not None:
                out.append((_without_name(s.labels), value))
        return out
    inner = evaluate(node.expr, series, t)
    if isinstance(inner, float):
        raise PromError(f"{node.op}() needs a vector")
    groups: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for labels, value in inner:
        if node.by is not None:
            key_labels = {k: labels[k] for k in node.by if k in labels}
        elif node.without is not None:
            key_labels = {k: v for k, v in _without_name(labels).items() if k not in node.without}
        else:
            key_labels = {}
        groups.setdefault(tuple(sorted(key_labels.items())), []).append(value)
    reduce: dict[str, Callable[[list[float]], float]] = {
        "sum": sum,
        "avg": lambda vs: sum(vs) / len(vs),
        "min": min,
        "max": max,
        "count": lambda vs: float(len(vs)),
    }
    return [(dict(key), float(reduce[node.op](values))) for key, values in groups.items()]


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def parse_time(text: str | None, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise PromError(f"cannot parse {text!r} to a valid timestamp") from None


def parse_step(text: str | None) -> float:
    if not text:
        raise PromError("missing step")
    try:
        step = float(text)
    except ValueError:
        step = parse_duration(text)
    if step <= 0:
        raise PromError("zero or negative query resolution step widths are not accepted")
    return step


def instant_query(query: str, series: Sequence[Series], t: float) -> dict[str, Any]:
    result = evaluate(parse_query(query), series, t)
    if isinstance(result, float):
        return {"resultType": "scalar", "result": [t, format_value(result)]}
    return {
        "resultType": "vector",
        "result": [{"metric": labels, "value": [t, format_value(v)]} for labels, v in result],
    }


def range_query(
    query: str, series: Sequence[Series], start: float, end: float, step: float
) -> dict[str, Any]:
    if end < start:
        raise PromError("end timestamp must not be before start time")
    if (end - start) / step > MAX_POINTS:
        raise PromError(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
            "query resolution (?step=XX)"
        )
    node = parse_query(query)
    rows: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
    for i in range(int((end - start) / step + 1e-9) + 1):
        t = start + i * step
        result = evaluate(node, series, t)
        vector = [({}, result)] if isinstance(result, float) else result
        for labels, value in vector:
            rows.setdefault(tuple(sorted(labels.items())), []).append([t, format_value(value)])
    return {
        "resultType": "matrix",
        "result": [{"metric": dict(key), "values": values} for key, values in rows.items()],
    }
