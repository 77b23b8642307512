"""Fly's region groups for outbound data: allowances and prices differ by group."""

from __future__ import annotations

NA_EU = "na_eu"
APAC = "apac"
AFRICA_INDIA = "africa_india"
GROUPS = (NA_EU, APAC, AFRICA_INDIA)
GROUP_NAMES = {
    NA_EU: "North America + Europe",
    APAC: "Asia-Pacific, Oceania, South America",
    AFRICA_INDIA: "Africa + India",
}
SHORT_NAMES = {NA_EU: "NA+EU", APAC: "Asia-Pacific", AFRICA_INDIA: "Africa/India"}

# fmt: off
_REGIONS = {
    APAC: ("hkg", "nrt", "sin", "syd", "bog", "eze", "gig", "gru", "scl"),
    AFRICA_INDIA: ("jnb", "bom", "maa", "del"),
    NA_EU: (
        "ams", "arn", "atl", "bos", "cdg", "den", "dfw", "ewr", "fra", "gdl", "iad", "lax",
        "lhr", "mad", "mia", "ord", "otp", "phx", "qro", "sea", "sjc", "waw", "yul", "yyz",
    ),
}
# fmt: on
REGION_GROUP = {region: group for group, regions in _REGIONS.items() for region in regions}


def group_of(region: str) -> str:
    """The pricing group of a region code; one flybot does not know is counted as North
    America + Europe, the cheapest, and the report names it."""
    return REGION_GROUP.get(region.lower(), NA_EU)


def known(region: str) -> bool:
    return region.lower() in REGION_GROUP
