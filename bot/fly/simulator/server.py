"""Running the simulator: in the current event loop (`running_simulator`), in a thread of its
own for synchronous callers (`serve_in_thread`), or in the foreground (`cli_main`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from bot.fly.simulator.app import build_app
from bot.fly.simulator.sim import FlySimulator

DEMO_TOKEN = "sim-token"


@dataclass
class RunningSimulator:
    sim: FlySimulator
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


async def _start(sim: FlySimulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    sim.bind_loop()
    runner = web.AppRunner(build_app(sim), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address in runner.addresses:
        bound = int(address[1])
        break
    return runner, bound


async def _stop(sim: FlySimulator, runner: web.AppRunner) -> None:
    sim.close()  # wakes hung and slow answers, so shutdown does not wait for them
    await runner.cleanup()


@contextlib.asynccontextmanager
async def running_simulator(
    sim: FlySimulator, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve `sim` in the running event loop for the duration of the block (port 0: any
    free port; read `server.base_url`)."""
    runner, bound = await _start(sim, host, port)
    try:
        yield RunningSimulator(sim, host, bound)
    finally:
        await _stop(sim, runner)


class ThreadedSimulator:
    """A simulator served from its own thread and event loop; `stop()` ends both."""

    def __init__(self, sim: FlySimulator, host: str, port: int, start_timeout: float) -> None:
        self.sim = sim
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._done: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(port,), name="fly-simulator", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(start_timeout):
            raise RuntimeError("the Fly simulator did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the Fly simulator failed to start: {self._error}")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve(port))
        self._loop.close()

    async def _serve(self, port: int) -> None:
        self._done = asyncio.Event()
        try:
            runner, self.port = await _start(self.sim, self.host, port)
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._done.wait()
        finally:
            await _stop(self.sim, runner)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive() and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout)

    def __enter__(self) -> ThreadedSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(
    sim: FlySimulator, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
) -> ThreadedSimulator:
    return ThreadedSimulator(sim, host, port, start_timeout)


def banner(base_url: str, token: str) -> str:
    return "\n".join(
        [
            f"Fly simulator listening on {base_url}",
            f"export FLY_FLAPS_BASE_URL={base_url}",
            f"export FLY_API_BASE_URL={base_url}",
            f"export FLY_API_TOKEN={token}",
            "# Paste the export lines into another shell, then run flybot (or any Fly client)",
            f"# against it. Test controls: {base_url}/__sim/calls, /__sim/faults. Ctrl-C stops.",
        ]
    )


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 4280,
    seed: str | None = "demo",
    *,
    token: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or forever), printing the base URLs first."""
    sim = FlySimulator(seed=0, token=token)
    if seed:
        sim.load_seed(seed)
    async with running_simulator(sim, host, port) as server:
        print(banner(server.base_url, token or DEMO_TOKEN), flush=True)
        await (stop or asyncio.Event()).wait()


def cli_main(port: int, seed: str | None, host: str = "127.0.0.1") -> int:
    """`flybot simulator`: blocks until Ctrl-C (or SIGTERM)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve_forever(host, port, seed, stop=stop)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"flybot simulator: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"flybot simulator: {exc}", file=sys.stderr)
        return 2
    return 0
