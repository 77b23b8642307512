"""The Fly simulator: an HTTP server with Fly's paths and JSON (Machines API, releases,
GraphQL, Prometheus, a fake registry) and its state in memory, for `flybot sandbox`,
`flybot simulator` and tests. See sim.py for the Python API and app.py for the routes."""

from bot.fly.simulator.app import OPERATIONS, build_app
from bot.fly.simulator.clock import SimulatorTiming
from bot.fly.simulator.faults import CallRecord, Fault
from bot.fly.simulator.server import (
    RunningSimulator,
    ThreadedSimulator,
    cli_main,
    running_simulator,
    serve_forever,
    serve_in_thread,
)
from bot.fly.simulator.sim import FlySimulator

__all__ = [
    "OPERATIONS",
    "CallRecord",
    "Fault",
    "FlySimulator",
    "RunningSimulator",
    "SimulatorTiming",
    "ThreadedSimulator",
    "build_app",
    "cli_main",
    "running_simulator",
    "serve_forever",
    "serve_in_thread",
]
