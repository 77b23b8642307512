"""Usage and free-allowance alerts: the daily collector (collector.py), the allowances and
prices of `[usage]` in flybot.toml (config.py), the month's figures and estimated bill
(figures.py), the threshold alerts and their forecast (alerts.py) and the chart (chart.py)."""
