"""The simulator driven by clients that are not flybot's: curl against `serve_in_thread`, and
the `cli_main` entry point as a process of its own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.fly.simulator import FlySimulator, SimulatorTiming, ThreadedSimulator, serve_in_thread

REPO = Path(__file__).resolve().parents[2]
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


@pytest.fixture
def threaded() -> Iterator[ThreadedSimulator]:
    sim = FlySimulator(seed=5, timing=SimulatorTiming.fast())
    sim.create_app("curl-app")
    server = serve_in_thread(sim, port=0)
    try:
        yield server
    finally:
        server.stop()


def curl(
    base_url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    assert CURL is not None
    args = [
        CURL,
        "-sS",
        "-i",
        "--max-time",
        "10",
        "-X",
        method,
        base_url + path,
        "-H",
        "Authorization: FlyV1 fm2_curl",
    ]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=15, check=True).stdout
    head, _, text = out.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.split("\n")
    response_headers = {
        k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if ":" in h)
    }
    return int(status_line.split()[1]), response_headers, json.loads(text) if text else None


@needs_curl
def test_curl_create_update_wait_lease_delete(threaded: ThreadedSimulator) -> None:
    base, machines = threaded.base_url, "/v1/apps/curl-app/machines"
    config = {"image": "registry.fly.io/curl-app:v1", "metadata": {"fly_process_group": "app"}}
    status, headers, made = curl(base, "POST", machines, {"config": config, "region": "ams"})
    assert status == 200 and made["state"] == "created" and headers["fly-request-id"]
    mid = made["id"]
    status, _, waited = curl(base, "GET", f"{machines}/{mid}/wait?state=started&timeout=5")
    assert (status, waited["state"], waited["ok"]) == (200, "started", True)

    status, _, lease = curl(base, "POST", f"{machines}/{mid}/lease", {"ttl": 30})
    assert status == 201
    nonce = lease["data"]["nonce"]
    new = {**config, "image": "registry.fly.io/curl-app:v2"}
    status, _, refused = curl(base, "POST", f"{machines}/{mid}", {"config": new})
    assert status == 409 and "lease" in refused["error"]
    status, _, updated = curl(
        base,
        "POST",
        f"{machines}/{mid}",
        {"config": new, "current_version": made["version"]},
        {"fly-machine-lease-nonce": nonce},
    )
    assert status == 200 and updated["version"] != made["version"]
    assert updated["image_ref"]["tag"] == "v2"
    status, _, waited = curl(
        base, "GET", f"{machines}/{mid}/wait?state=started&timeout=5&version={updated['version']}"
    )
    assert status == 200 and waited["version"] == updated["version"]

    status, _, _ = curl(
        base, "DELETE", f"{machines}/{mid}?force=true", headers={"fly-machine-lease-nonce": nonce}
    )
    assert status == 200
    status, _, waited = curl(base, "GET", f"{machines}/{mid}/wait?state=destroyed&timeout=5")
    assert (status, waited["state"]) == (200, "destroyed")
    status, _, listed = curl(base, "GET", machines)
    assert (status, listed) == (200, [])
    ops = [c.operation for c in threaded.sim.calls]
    assert ops[:3] == ["Machines_create", "Machines_wait", "Machines_create_lease"]
    assert ops.count("Machines_update") == 2 and ops[-1] == "Machines_list"


def test_cli_main_prints_the_exports_and_stops_on_ctrl_c() -> None:
    code = "from bot.fly.simulator import cli_main; raise SystemExit(cli_main(0, 'demo'))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        assert set(exports) == {"FLY_FLAPS_BASE_URL", "FLY_API_BASE_URL", "FLY_API_TOKEN"}
        base = exports["FLY_FLAPS_BASE_URL"]
        assert base.startswith("http://127.0.0.1:") and exports["FLY_API_BASE_URL"] == base
        if CURL is not None:
            status, _, apps = curl(base, "GET", "/v1/apps?org_slug=personal")
            assert status == 200 and "ping-go-prod" in {a["name"] for a in apps["apps"]}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
