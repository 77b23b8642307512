"""Machines over the wire: lifecycle, versions, waits, paging, delete, leases, health."""

from __future__ import annotations

import asyncio
import time

from tests.simulator.conftest import IMAGE, Sim, eventually, machine_config

NONCE = "fly-machine-lease-nonce"


async def states_seen(fly: Sim, app: str, machine_id: str, until: str) -> list[str]:
    seen: list[str] = []
    for _ in range(500):
        state = (await fly.machine(app, machine_id))["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == until:
            return seen
        await asyncio.sleep(0.002)
    raise AssertionError(f"never reached {until}: {seen}")


async def test_create_goes_through_starting_to_started(fly: Sim) -> None:
    app = await fly.create_app()
    made = await fly.create_machine(app, name="web-1")
    assert made["state"] == "created" and made["name"] == "web-1" and made["region"] == "nrt"
    assert made["version"] == made["instance_id"]
    assert made["image_ref"]["repository"] == "sim-test" and made["image_ref"]["tag"] == "v1"
    assert made["image_ref"]["digest"].startswith("sha256:")
    assert made["private_ip"].startswith("fdaa:")
    seen = await states_seen(fly, app, made["id"], "started")
    assert seen[-2:] == ["starting", "started"]
    assert [e["type"] for e in (await fly.machine(app, made["id"]))["events"]] == [
        "start",
        "launch",
    ]


async def test_stop_start_restart_suspend_and_cordon(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app)
    base = f"/v1/apps/{app}/machines/{m['id']}"
    assert (await fly.wait(app, m["id"], "started")).json()["state"] == "started"
    assert (await fly.http.post(f"{base}/stop", json={"signal": "SIGTERM"})).status_code == 200
    assert (await fly.machine(app, m["id"]))["state"] == "stopping"
    assert (await fly.wait(app, m["id"], "stopped")).json()["ok"] is True
    started = await fly.http.post(f"{base}/start")
    assert started.json()["previous_state"] == "stopped"
    await fly.wait(app, m["id"], "started")
    await fly.http.post(f"{base}/restart")
    assert await states_seen(fly, app, m["id"], "started") in (
        ["stopping", "starting", "started"],
        ["starting", "started"],
        ["stopping", "started"],
    )
    await fly.http.post(f"{base}/suspend")
    assert (await fly.wait(app, m["id"], "suspended")).json()["state"] == "suspended"
    await fly.http.post(f"{base}/cordon")
    assert (await fly.machine(app, m["id"]))["cordoned"] is True
    await fly.http.post(f"{base}/uncordon")
    assert (await fly.machine(app, m["id"]))["cordoned"] is False
    types = [e["type"] for e in (await fly.http.get(f"{base}/events")).json()]
    assert {"launch", "start", "stop", "exit", "restart", "suspend"} <= set(types)


async def test_update_replaces_the_whole_config_and_changes_the_version(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app)
    await fly.wait(app, m["id"], "started")
    url = f"/v1/apps/{app}/machines/{m['id']}"
    new = machine_config("registry.fly.io/sim-test:v2", env={"A": "1"})
    del new["checks"]
    r = await fly.http.post(url, json={"config": new, "current_version": m["version"]})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["version"] != m["version"] and updated["instance_id"] == updated["version"]
    assert updated["state"] == "replacing"
    assert updated["config"]["env"] == {"A": "1"} and "checks" not in updated["config"]
    assert updated["image_ref"]["tag"] == "v2"
    wait = await fly.wait(app, m["id"], "started", version=updated["version"])
    assert wait.status_code == 200
    assert wait.json()["version"] == updated["version"] and wait.json()["event_id"]

    stale = await fly.http.post(url, json={"config": new, "current_version": m["version"]})
    assert stale.status_code == 409 and "current_version" in stale.json()["error"]
    moved = await fly.http.post(url, json={"config": new, "region": "sin"})
    assert moved.status_code == 400 and "region" in moved.json()["error"]
    again = await fly.http.post(url, json={"config": new})
    assert again.json()["version"] not in (m["version"], updated["version"])


async def test_update_with_skip_launch_leaves_it_stopped(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app, skip_launch=True)
    assert (await fly.wait(app, m["id"], "stopped")).status_code == 200
    url = f"/v1/apps/{app}/machines/{m['id']}"
    r = await fly.http.post(url, json={"config": machine_config(), "skip_launch": True})
    assert r.json()["state"] == "updating"
    assert (await fly.wait(app, m["id"], "stopped", version=r.json()["version"])).json()[
        "state"
    ] == "stopped"


async def test_wait_validates_and_times_out(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app)
    url = f"/v1/apps/{app}/machines/{m['id']}/wait"
    for params in ({"timeout": 0}, {"timeout": 61}, {"timeout": "soon"}, {"state": "bogus"}):
        r = await fly.http.get(url, params={"state": "started", **params})
        assert r.status_code == 400, params
        assert r.json()["error"].startswith("invalid_argument")
        assert r.json()["status"] == "unknown"
    await fly.wait(app, m["id"], "started")
    started = time.monotonic()
    r = await fly.http.get(url, params={"state": "stopped", "timeout": 1})
    assert r.status_code == 408 and "did not reach stopped" in r.json()["error"]
    assert 0.9 <= time.monotonic() - started < 2.0
    settled = await fly.http.get(url, params={"state": "stopped,settled", "timeout": 1})
    assert settled.json() == {
        "ok": True,
        "state": "started",
        "version": m["version"],
        "event_id": settled.json()["event_id"],
    }


async def test_list_filters_and_pages_with_next_cursor(fly: Sim) -> None:
    app = await fly.create_app()
    made = []
    for region, group in (("nrt", "web"), ("sin", "web"), ("nrt", "cron"), ("ams", "web")):
        config = machine_config()
        config["metadata"]["fly_process_group"] = group
        made.append((await fly.create_machine(app, region=region, config=config))["id"])
    url = f"/v1/apps/{app}/machines"
    ids: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = await fly.http.get(url, params=params)
        ids += [m["id"] for m in r.json()]
        pages += 1
        cursor = r.headers.get("fly-next-cursor")
        if not cursor:
            break
    assert ids == made and pages == 2
    assert (await fly.http.get(url, params={"limit": 0})).status_code == 400
    nrt = (await fly.http.get(url, params={"region": "nrt"})).json()
    assert [m["id"] for m in nrt] == [made[0], made[2]]
    web = (await fly.http.get(url, params={"metadata.fly_process_group": "web"})).json()
    assert [m["id"] for m in web] == [made[0], made[1], made[3]]
    await fly.wait(app, made[0], "started")
    await fly.http.post(f"{url}/{made[0]}/stop")
    await fly.wait(app, made[0], "stopped")
    stopped = (await fly.http.get(url, params={"state": "stopped,suspended"})).json()
    assert [m["id"] for m in stopped] == [made[0]]


async def test_delete_is_asynchronous(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app)
    await fly.wait(app, m["id"], "started")
    url = f"/v1/apps/{app}/machines/{m['id']}"
    refused = await fly.http.delete(url)
    assert refused.status_code == 412 and "not currently stopped" in refused.json()["error"]
    assert (await fly.http.delete(url, params={"kill": "true"})).status_code == 200
    listed = (await fly.http.get(f"/v1/apps/{app}/machines")).json()
    assert [(x["id"], x["state"]) for x in listed] == [(m["id"], "destroying")]
    assert (await fly.wait(app, m["id"], "destroyed")).json()["state"] == "destroyed"
    assert (await fly.http.get(f"/v1/apps/{app}/machines")).json() == []
    deleted = (await fly.http.get(f"/v1/apps/{app}/machines?include_deleted=true")).json()
    assert [x["state"] for x in deleted] == ["destroyed"]
    assert (await fly.http.post(f"{url}/start")).status_code == 404


async def test_leases(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app)
    url = f"/v1/apps/{app}/machines/{m['id']}"
    assert (await fly.http.get(f"{url}/lease")).status_code == 404
    r = await fly.http.post(f"{url}/lease", json={"ttl": 30, "description": "deploy"})
    assert r.status_code == 201
    lease = r.json()["data"]
    assert r.json()["status"] == "success"
    assert set(lease) == {"nonce", "expires_at", "owner", "description", "version"}
    assert lease["description"] == "deploy" and lease["version"] == m["version"]
    assert abs(lease["expires_at"] - (time.time() + 30)) < 3
    held = await fly.http.post(f"{url}/lease", json={"ttl": 30})
    assert held.status_code == 409 and "lease" in held.json()["error"]

    await fly.wait(app, m["id"], "started")
    mine = {NONCE: lease["nonce"]}
    wrong = {NONCE: "not-the-nonce"}
    for method, path, body in (
        ("POST", "", {"config": machine_config()}),
        ("POST", "/stop", None),
        ("POST", "/restart", None),
        ("POST", "/start", None),
        ("DELETE", "?force=true", None),
    ):
        for headers in ({}, wrong):
            r = await fly.http.request(method, url + path, json=body, headers=headers)
            assert r.status_code == 409, (method, path, r.text)
    assert (await fly.http.post(f"{url}/stop", headers=mine)).status_code == 200

    refreshed = await fly.http.post(f"{url}/lease", json={"ttl": 60}, headers=mine)
    assert refreshed.status_code == 200
    assert refreshed.json()["data"]["nonce"] == lease["nonce"]
    assert refreshed.json()["data"]["expires_at"] > lease["expires_at"]
    assert (await fly.http.delete(f"{url}/lease", headers=wrong)).status_code == 409
    assert (await fly.http.delete(f"{url}/lease")).status_code == 400
    assert (await fly.http.delete(f"{url}/lease", headers=mine)).status_code == 200
    assert (await fly.http.get(f"{url}/lease")).status_code == 404

    # A lease left behind blocks others until it expires.
    r = await fly.http.post(f"{url}/lease", json={"ttl": 5})
    assert (await fly.http.post(f"{url}/lease", json={"ttl": 5})).status_code == 409
    fly.sim.advance(6)
    assert (await fly.http.get(f"{url}/lease")).status_code == 404
    assert (await fly.http.post(f"{url}/start")).status_code == 200
    assert (await fly.http.post(f"{url}/lease", json={"ttl": 5})).status_code == 201


async def test_create_with_lease_ttl_returns_the_nonce(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app, lease_ttl=20)
    assert m["nonce"]
    r = await fly.http.get(f"/v1/apps/{app}/machines/{m['id']}/lease")
    assert r.json()["data"]["nonce"] == m["nonce"]


async def test_metadata(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app)
    url = f"/v1/apps/{app}/machines/{m['id']}/metadata"
    assert (await fly.http.post(f"{url}/team", json={"value": "core"})).status_code == 204
    assert (await fly.http.get(f"{url}/team")).json() == {"value": "core"}
    patch = {"metadata": {"a": "1", "team": None, "fly_process_group": ""}}
    assert (await fly.http.patch(url, json=patch)).status_code == 204
    assert (await fly.http.get(url)).json() == {"fly_platform_version": "v2", "a": "1"}
    stale = await fly.http.patch(url, json={"metadata": {"b": "2"}, "machine_version": "old"})
    assert stale.status_code == 412
    assert (await fly.http.delete(f"{url}/a")).status_code == 204
    assert (await fly.http.get(f"{url}/a")).status_code == 404
    assert (await fly.machine(app, m["id"]))["config"]["metadata"] == {"fly_platform_version": "v2"}


async def test_checks_pass_after_the_grace_period(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app)
    await fly.wait(app, m["id"], "started")
    early = (await fly.machine(app, m["id"]))["checks"]
    assert {c["name"] for c in early} == {"alive", "servicecheck-00-http-8080"}
    assert {c["status"] for c in early} == {"warning"}

    async def passing() -> bool:
        checks = (await fly.machine(app, m["id"]))["checks"]
        return all(c["status"] == "passing" for c in checks)

    await eventually(passing)
    checks = {c["name"]: c for c in (await fly.machine(app, m["id"]))["checks"]}
    assert checks["servicecheck-00-http-8080"]["output"].endswith('/healthz: 200 OK Output: "ok"')
    assert checks["alive"]["updated_at"].endswith("Z")


async def test_a_broken_image_starts_but_its_checks_are_critical(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app, config=machine_config("registry.fly.io/x:v2-broken"))
    await fly.wait(app, m["id"], "started")

    async def critical() -> bool:
        checks = (await fly.machine(app, m["id"]))["checks"]
        return all(c["status"] == "critical" for c in checks)

    await eventually(critical)
    checks = {c["name"]: c for c in (await fly.machine(app, m["id"]))["checks"]}
    http = checks["servicecheck-00-http-8080"]["output"]
    assert http.startswith("HTTP GET http://172.19.") and "500 Internal Server Error" in http
    assert ":8080/healthz: 500" in http
    assert "connection refused" in checks["alive"]["output"]
    assert (await fly.machine(app, m["id"]))["state"] == "started"


async def test_a_crashloop_image_exits_and_restarts_over_and_over(fly: Sim) -> None:
    app = await fly.create_app()
    m = await fly.create_machine(app, config=machine_config("registry.fly.io/x:v3-crashloop"))
    url = f"/v1/apps/{app}/machines/{m['id']}"

    async def exits() -> list[dict[str, object]]:
        events = (await fly.http.get(f"{url}/events", params={"limit": 50})).json()
        return [e for e in events if e["type"] == "exit"]

    async def three_exits() -> bool:
        return len(await exits()) >= 3

    await eventually(three_exits)
    exit_event = (await exits())[0]["request"]["exit_event"]  # type: ignore[index]
    assert exit_event["exit_code"] == 1 and exit_event["restarting"] is True
    assert exit_event["oom_killed"] is False
    starts = [e for e in (await fly.http.get(f"{url}/events")).json() if e["type"] == "start"]
    assert len(starts) >= 3
    machine = await fly.machine(app, m["id"])
    assert machine["state"] in ("starting", "started")
    assert not any(c["status"] == "passing" for c in machine["checks"])


async def test_a_run_once_machine_exits_and_destroys_itself(fly: Sim) -> None:
    app = await fly.create_app()
    config = machine_config(init={"cmd": ["bin/migrate"]}, auto_destroy=True)
    config["restart"] = {"policy": "no"}
    m = await fly.create_machine(app, config=config)
    assert (await fly.wait(app, m["id"], "destroyed")).status_code == 200
    events = (await fly.http.get(f"/v1/apps/{app}/machines/{m['id']}/events")).json()
    [exit_event] = [e for e in events if e["type"] == "exit"]
    assert exit_event["request"]["exit_event"]["exit_code"] == 0


async def test_a_missing_image_cannot_be_created_and_images_can_be_asked_about(
    fly: Sim,
) -> None:
    app = await fly.create_app()
    r = await fly.http.post(
        f"/v1/apps/{app}/machines",
        json={"config": machine_config("registry.fly.io/sim-test:v9-missing"), "region": "nrt"},
    )
    assert r.status_code == 422 and "not found" in r.json()["error"]
    assert not fly.sim.image_exists("registry.fly.io/sim-test:v9-missing")
    assert fly.sim.image_exists(IMAGE)
    ok = await fly.http.head("/v2/sim-test/manifests/v1")
    assert ok.status_code == 200 and ok.headers["docker-content-digest"].startswith("sha256:")
    assert (await fly.http.head("/v2/sim-test/manifests/v9-missing")).status_code == 404
    fly.sim.prune_image(IMAGE)
    assert (await fly.http.get("/v2/sim-test/manifests/v1")).json()["errors"][0]["code"] == (
        "MANIFEST_UNKNOWN"
    )
    # ...and through GraphQL, as flybot's rollback asks it
    query = "query($a: String!, $r: String!) { app(name: $a) { image(ref: $r) { digest } } }"
    for ref, exists in ((IMAGE, False), ("registry.fly.io/sim-test:v2", True)):
        body = {"query": query, "variables": {"a": app, "r": ref}}
        data = (await fly.http.post("/graphql", json=body)).json()["data"]
        assert bool(data["app"]["image"]) is exists


async def test_per_machine_start_duration(fly: Sim) -> None:
    app = await fly.create_app()
    fly.sim.set_start_duration(0.4, image="registry.fly.io/slow:v1")
    slow = await fly.create_machine(app, config=machine_config("registry.fly.io/slow:v1"))
    quick = await fly.create_machine(app)
    await fly.wait(app, quick["id"], "started")
    assert (await fly.machine(app, slow["id"]))["state"] in ("created", "starting")
    started = time.monotonic()
    await fly.wait(app, slow["id"], "started")
    assert time.monotonic() - started > 0.2
