"""Which bits a deploy runs: every image is pinned to its digest when the deploy is planned.

A tag can be pushed again at any time, so an approval given for `shop:v2` would otherwise
let other bits run. The digest comes from what already runs (promotion, a config-only
redeploy), from a reference that names one, from Fly's image look-up (GraphQL
`app.image(ref)`, as flyctl resolves `--image`), or, when that fails, from the registry's
manifest. The deploy then rolls out `repo:tag@sha256:…`: the tag stays for people to read,
the digest decides what is pulled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.fly import FlyAPIError

if TYPE_CHECKING:
    from bot.fly import FlyClient

DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageName:
    registry: str
    repository: str
    tag: str
    digest: str = ""

    @classmethod
    def parse(cls, image: str) -> ImageName:
        rest, _, digest = image.partition("@")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest if "/" in rest else f"library/{rest}"
        repository, colon, tag = path.rpartition(":")
        if not colon or "/" in tag:
            repository, tag = path, "latest" if not digest else ""
        return cls(registry, repository, tag, digest)


def without_digest(image: str) -> str:
    """The reference people read: `registry.fly.io/shop:v2` for `…:v2@sha256:…`."""
    return image.partition("@")[0]


def pinned(image: str, digest: str) -> str:
    return f"{without_digest(image)}@{digest}"


class ImageNotFound(Exception):
    """The registry answered, and has no such image (or tag)."""


@dataclass(frozen=True)
class Pin:
    image: str  # what to deploy: `repo:tag@sha256:…`, or the bare tag when nothing answered
    digest: str  # "" when the image could not be pinned
    source: str  # where the digest came from
    problem: str = ""  # why it could not be pinned

    @property
    def name(self) -> str:
        return without_digest(self.image)


async def pin(fly: FlyClient, app: str, image: str, known_digest: str = "") -> Pin:
    """Pin `image` to a digest. ImageNotFound when the image surely does not exist; a Pin
    without a digest (and the reason) when no look-up could answer."""
    name = ImageName.parse(image)
    if name.digest:
        return Pin(image, name.digest, "given by digest")
    if known_digest:
        return Pin(pinned(image, known_digest), known_digest, "the digest it runs as")
    try:
        digest = await fly.image_digest(app, image)
    except FlyAPIError as exc:
        lookup_failed = f"Fly's image look-up failed ({exc.status or 'no answer'}: {exc.message})"
    else:
        if digest is None:
            raise ImageNotFound(f"{image} is not in the registry (Fly's image look-up has none)")
        return Pin(pinned(image, digest), digest, "Fly's image look-up")
    try:
        digest = await fly.registry_digest(name.registry, name.repository, name.tag)
    except FlyAPIError as exc:
        problem = (
            f"{lookup_failed}, and so did the registry ({exc.status or 'no answer'}: {exc.message})"
        )
        return Pin(image, "", "", problem)
    if digest is None:
        raise ImageNotFound(f"{image} is not in the registry ({name.registry} has no such tag)")
    return Pin(pinned(image, digest), digest, f"the registry ({name.registry})")


async def exists(fly: FlyClient, app: str, image: str) -> bool | None:
    """Whether the image (a pinned reference: its exact bits) can still be pulled: False only
    on a definite "not found", None when no look-up answered."""
    try:
        return await fly.image_digest(app, image) is not None
    except FlyAPIError:
        pass
    name = ImageName.parse(image)
    try:
        return (
            await fly.registry_digest(name.registry, name.repository, name.digest or name.tag)
            is not None
        )
    except FlyAPIError:
        return None
