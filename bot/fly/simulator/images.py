"""Image references: parsing, fake digests, and the traits test images carry in their tag.

A tag containing `broken` starts but fails its health checks; `crashloop` starts, exits with
code 1 and is restarted over and over; `missing` does not exist in the registry (and neither
does an image pruned with `FlySimulator.prune_image`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DOCKER_HUB = "docker-hub-mirror.fly.io"


@dataclass(frozen=True)
class ImageName:
    registry: str
    repository: str
    tag: str
    digest: str | None = None

    @property
    def ref(self) -> str:
        ref = f"{self.registry}/{self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


def parse_image(image: str) -> ImageName:
    rest, _, digest = image.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
        if "/" not in path:
            path = f"library/{path}"
    repository, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        repository, tag = path, "latest"
    return ImageName(registry, repository, tag, digest or None)


def fake_digest(image: str) -> str:
    """A stable sha256 digest for an image reference (the same string, the same digest)."""
    name = parse_image(image)
    if name.digest:
        return name.digest
    base = f"{name.registry}/{name.repository}:{name.tag}"
    return "sha256:" + hashlib.sha256(base.encode()).hexdigest()


def image_ref(image: str) -> dict[str, object]:
    name = parse_image(image)
    return {
        "registry": name.registry,
        "repository": name.repository,
        "tag": name.tag,
        "digest": fake_digest(image),
        "labels": {},
    }


def is_broken(image: str) -> bool:
    return "broken" in parse_image(image).tag


def is_crashloop(image: str) -> bool:
    return "crashloop" in parse_image(image).tag


def is_missing(image: str) -> bool:
    return "missing" in parse_image(image).tag


def canonical(image: str) -> str:
    name = parse_image(image)
    return f"{name.registry}/{name.repository}:{name.tag}"
