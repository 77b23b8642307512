"""The report's chart: outbound GB per day (cumulative, per region group) against each
allowance line with the month's trend dashed to its end, beside machine-hours by app.

matplotlib (Agg backend) is imported on the first chart drawn (bot/charts.py), so flybot's start-up
never pays for it."""

from __future__ import annotations

from bot import charts
from bot.usage.figures import MonthFigures, outbound_metric
from bot.usage.regions import GROUPS, SHORT_NAMES

COLOURS = {"na_eu": "#1f77b4", "apac": "#d62728", "africa_india": "#2ca02c"}
WIDTH_IN, HEIGHT_IN, DPI = 9.0, 3.6, 100  # 900 x 360 px


def render_png(figures: MonthFigures, title: str) -> bytes:
    plt = charts.pyplot()
    fig, (out_ax, app_ax) = plt.subplots(
        1, 2, figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, gridspec_kw={"width_ratios": [3, 2]}
    )
    try:
        days = list(range(1, figures.days_in_month + 1))
        for group in GROUPS:
            trend = figures.trend(outbound_metric(group))
            colour = COLOURS[group]
            points = [(d, v) for d, v in zip(days, trend.daily, strict=True) if v is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                out_ax.plot(xs, ys, color=colour, marker=".", label=SHORT_NAMES[group])
                if trend.through < figures.days_in_month:
                    out_ax.plot(
                        [trend.through, figures.days_in_month],
                        [trend.used, trend.projected],
                        color=colour,
                        linestyle="--",
                    )
            if trend.allowance > 0:
                out_ax.axhline(trend.allowance, color=colour, linewidth=0.8, alpha=0.5)
        out_ax.set_xlim(1, figures.days_in_month)
        out_ax.set_ylim(bottom=0)
        out_ax.set_xlabel("day of month")
        out_ax.set_ylabel("outbound GB (cumulative)")
        out_ax.set_title("Outbound vs allowance (trend dashed)", fontsize=9)
        out_ax.legend(fontsize=7, loc="upper left")
        apps = sorted(figures.hours_by_app.items(), key=lambda item: -item[1])[:8]
        if apps:
            names, hours = zip(*apps, strict=True)
            app_ax.barh(list(names)[::-1], list(hours)[::-1], color="#7f7f7f")
        app_ax.set_xlabel("machine-hours")
        app_ax.set_title("Machine-hours by app", fontsize=9)
        app_ax.tick_params(axis="y", labelsize=7)
        return charts.png(fig, title)
    finally:
        plt.close(fig)
