"""Image references: parsing, fake digests, the traits test images carry in their tag, and
the registry that maps each tag to the digest it points at now.

A tag containing `broken` starts but fails its health checks; `crashloop` starts, exits with
code 1 and is restarted over and over; `oom` does the same, killed for memory (exit code
137, `oom_killed`); `missing` does not exist in the registry (and neither
does an image pruned with `FlySimulator.prune_image`).

Traits belong to the bits, not the name: a digest keeps the traits of the tag it was first
pushed as, so `shop@sha256:…` of a broken build is broken too, and a tag pushed again
(`FlySimulator.push_image`) points at new bits with a new digest while machines already
running the old digest keep running it."""

from __future__ import annotations

import hashlib
import re
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


def is_oom(image: str) -> bool:
    return "oom" in re.split(r"[-_.]", parse_image(image).tag)


def is_missing(image: str) -> bool:
    return "missing" in parse_image(image).tag


def canonical(image: str) -> str:
    name = parse_image(image)
    return f"{name.registry}/{name.repository}:{name.tag}"


class Registry:
    """Tags → digests, as a registry holds them. A tag not seen before gets a stable
    digest on first look; `push` moves a tag to a new digest."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}  # canonical repo:tag -> its digest now
        self.bits: dict[str, str] = {}  # digest -> the tag reference whose traits it carries
        self.pruned: set[str] = set()  # canonical tags and digests that are gone
        self.pushes = 0

    def digest_of(self, image: str) -> str | None:
        """The digest `image` names now (its pinned digest, or its tag's), None if absent."""
        name = parse_image(image)
        if name.digest:
            known = name.digest in self.bits
            if not known and name.tag != "latest":
                self._look(f"{name.registry}/{name.repository}:{name.tag}")
                known = name.digest in self.bits
            return name.digest if known and name.digest not in self.pruned else None
        return self._look(canonical(image))

    def _look(self, tag: str) -> str | None:
        if is_missing(tag) or tag in self.pruned:
            return None
        digest = self.tags.get(tag)
        if digest is None:
            digest = fake_digest(tag)
            self.tags[tag] = digest
            self.bits.setdefault(digest, tag)
        return None if digest in self.pruned else digest

    def traits_of(self, image: str) -> str:
        """The tag reference whose traits (broken, crashloop) the image's bits carry."""
        digest = self.digest_of(image)
        return self.bits.get(digest or "", canonical(image))

    def push(self, image: str, like: str | None = None) -> str:
        """Point the tag at new bits (with `like`'s traits, or the tag's own): the new digest."""
        tag = canonical(image)
        self.pushes += 1
        digest = "sha256:" + hashlib.sha256(f"{tag}#push{self.pushes}".encode()).hexdigest()
        self.tags[tag] = digest
        self.bits[digest] = canonical(like) if like else tag
        self.pruned.discard(tag)
        return digest

    def prune(self, image: str) -> None:
        digest = self.digest_of(image)
        self.pruned.add(canonical(image))
        if digest:
            self.pruned.add(digest)


def image_ref_of(image: str, digest: str | None) -> dict[str, object]:
    ref = image_ref(image)
    if digest:
        ref["digest"] = digest
    return ref
