"""The Fly calls' metrics are labelled by operation, never by a name: every label set is a
series that lives as long as the process (memory) and in Prometheus (cardinality), so a
label taking each image tag or digest would grow with every release deployed."""

from __future__ import annotations

from bot import metrics
from bot.fly.simulator import FlySimulator, SimulatorTiming, running_simulator
from tests.flyharness import fly_client


def operations() -> set[str]:
    found = set()
    for family in metrics.FLY_LATENCY.collect():
        for sample in family.samples:
            if "operation" in sample.labels:
                found.add(sample.labels["operation"])
    return found


async def test_registry_look_ups_of_new_tags_and_digests_add_no_series() -> None:
    sim = FlySimulator(seed=3, timing=SimulatorTiming.fast())
    async with running_simulator(sim, port=0) as server:
        fly = fly_client(server.base_url)
        try:
            for reference in ("v1", "v2", "v3-rc1", "sha256:" + "0" * 64):
                await fly.registry_digest("registry.fly.io", "shop", reference)
            await fly.registry_digest("registry.fly.io", "acme/shop", "v1")
        finally:
            await fly.aclose()
    # Other tests in this process may have made the series already: what counts is that it
    # is the only one the registry's paths make.
    manifests = {op for op in operations() if "/manifests/" in op}
    assert manifests == {"HEAD /v2/:repository/manifests/:reference"}


def test_a_manifest_path_names_no_repository_or_reference() -> None:
    for path in ("/v2/shop/manifests/v2", "/v2/acme/shop/manifests/sha256:abc"):
        assert metrics.fly_operation("head", path) == "HEAD /v2/:repository/manifests/:reference"
    # Everything else keeps its form.
    assert (
        metrics.fly_operation("GET", "/v1/apps/ping/machines/e28/lease")
        == "GET /v1/apps/:app/machines/:id/lease"
    )
