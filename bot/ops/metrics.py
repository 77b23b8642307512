"""An app's HTTP health over a window, from Fly's Prometheus: requests per second by status
class, p50/p95 response time, and machines up — the three panels an on-call person opens
Grafana for — and the PNG chart of them (matplotlib's Agg backend, imported only when a
chart is drawn, so flybot's start-up never pays for it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from bot import charts
from bot.fly import FlyClient, PromSeries

WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
STEPS = {"1h": 60, "6h": 300, "24h": 900, "7d": 3600}  # seconds between points: 61–169 of them
CLASSES = ("2xx", "3xx", "4xx", "5xx")
# Fly's managed Grafana, its app dashboard (it picks the org the viewer is signed in to).
GRAFANA = "https://fly-metrics.net/d/fly-app/fly-app?var-app={app}"

Point = tuple[float, float]


def _selector(app: str) -> str:
    return '{app="' + app.replace("\\", "\\\\").replace('"', '\\"') + '"}'


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative `(le, count)` buckets: the bucket the
    rank falls in, linearly interpolated (from 0 for the first bucket). None without data."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    below_le, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return below_le  # the highest finite bound, as Prometheus answers
            if count == below:
                return le
            return below_le + (le - below_le) * (rank - below) / (count - below)
        below_le, below = le, count
    return None


@dataclass
class AppMetrics:
    app: str
    since: str
    start: float
    end: float
    rps: dict[str, list[Point]] = field(default_factory=dict)  # status class -> points
    p50: list[Point] = field(default_factory=list)
    p95: list[Point] = field(default_factory=list)
    up: list[Point] = field(default_factory=list)
    machines: int = 0  # machines reported at the last point (up or not)

    @staticmethod
    def _last(points: Sequence[Point]) -> float | None:
        return points[-1][1] if points else None

    def caption(self) -> str:
        """The newest point of each panel, as numbers."""
        parts = []
        rates = {c: self._last(self.rps.get(c, [])) for c in CLASSES}
        shown = [f"{c} {v:.1f}" for c, v in rates.items() if v is not None and v > 0]
        parts.append("req/s: " + (", ".join(shown) if shown else "none"))
        p50, p95 = self._last(self.p50), self._last(self.p95)
        if p50 is not None and p95 is not None:
            parts.append(f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
        else:
            parts.append("response time: no requests")
        up = self._last(self.up)
        parts.append(f"machines up {int(up or 0)}/{self.machines}")
        return "; ".join(parts)

    @property
    def has_data(self) -> bool:
        return bool(self.up or self.p50 or any(self.rps.values()))


def _points(series: PromSeries) -> list[Point]:
    return [(s.timestamp, s.value) for s in series.samples if math.isfinite(s.value)]


async def read(fly: FlyClient, app: str, since: str, *, end: float) -> AppMetrics:
    """Three range queries (and one count) over the window ending at `end` (Fly's clock)."""
    window, step = WINDOWS[since], STEPS[since]
    start = end - window
    rate = f"{max(300, step)}s"
    sel = _selector(app)
    out = AppMetrics(app=app, since=since, start=start, end=end)

    async def ask(query: str) -> list[PromSeries]:
        return await fly.prom_query_range(query, start=start, end=end, step=step)

    by_status = await ask(f"sum by (status) (rate(fly_app_http_responses_count{sel}[{rate}]))")
    classes: dict[str, dict[float, float]] = {}
    for series in by_status:
        code = series.metric.get("status", "")
        cls = f"{code[:1]}xx" if code[:1] in "2345" and code else "other"
        bucket = classes.setdefault(cls, {})
        for t, v in _points(series):
            bucket[t] = bucket.get(t, 0.0) + v
    out.rps = {c: sorted(points.items()) for c, points in classes.items()}
    buckets = await ask(
        f"sum by (le) (rate(fly_app_http_response_time_seconds_bucket{sel}[{rate}]))"
    )
    per_time: dict[float, list[tuple[float, float]]] = {}
    for series in buckets:
        le = float(series.metric.get("le", "+Inf").replace("+Inf", "inf"))
        for t, v in _points(series):
            per_time.setdefault(t, []).append((le, v))
    for t in sorted(per_time):
        p50, p95 = quantile(0.5, per_time[t]), quantile(0.95, per_time[t])
        if p50 is not None and p95 is not None:
            out.p50.append((t, p50))
            out.p95.append((t, p95))
    [*up] = await ask(f"sum(fly_instance_up{sel})")
    out.up = _points(up[0]) if up else []
    counted = await ask(f"count(fly_instance_up{sel})")
    out.machines = int(_points(counted[0])[-1][1]) if counted and counted[0].samples else 0
    return out


def grafana_link(app: str) -> str:
    return GRAFANA.format(app=quote(app, safe=""))


# --- the chart ------------------------------------------------------------------------------

COLOURS = {"2xx": "#2ca02c", "3xx": "#1f77b4", "4xx": "#ff7f0e", "5xx": "#d62728"}


def render_png(metrics: AppMetrics, title: str) -> bytes:
    """Three panels side by side, 1000 x 340 px."""
    plt = charts.pyplot()
    fig, (rps_ax, time_ax, up_ax) = plt.subplots(1, 3, figsize=(10.0, 3.4), dpi=100)
    try:
        unit, size = ("hours", 3600.0) if metrics.since in ("24h", "7d") else ("minutes", 60.0)

        def minutes(points: Sequence[Point]) -> list[float]:
            return [(t - metrics.end) / size for t, _ in points]

        for cls in (*CLASSES, "other"):
            points = metrics.rps.get(cls) or []
            if points:
                rps_ax.plot(
                    minutes(points), [v for _, v in points], label=cls, color=COLOURS.get(cls)
                )
        rps_ax.set_title("requests/s by status", fontsize=9)
        rps_ax.set_ylim(bottom=0)
        if any(metrics.rps.values()):
            rps_ax.legend(fontsize=7, loc="upper left")
        for name, points, style in (("p50", metrics.p50, "-"), ("p95", metrics.p95, "--")):
            if points:
                time_ax.plot(
                    minutes(points), [v * 1000 for _, v in points], style, label=name, color="#444"
                )
        time_ax.set_title("response time (ms)", fontsize=9)
        time_ax.set_ylim(bottom=0)
        if metrics.p50:
            time_ax.legend(fontsize=7, loc="upper left")
        if metrics.up:
            up_ax.step(
                minutes(metrics.up),
                [v for _, v in metrics.up],
                where="post",
                color="#7f7f7f",
                marker=".",
            )
        up_ax.set_title("machines up", fontsize=9)
        up_ax.set_ylim(0, max(metrics.machines, 1) + 0.5)
        for ax in (rps_ax, time_ax, up_ax):
            ax.set_xlim((metrics.start - metrics.end) / size, 0)
            ax.set_xlabel(f"{unit} ago", fontsize=7)
            ax.tick_params(labelsize=7)
        return charts.png(fig, title)
    finally:
        plt.close(fig)
