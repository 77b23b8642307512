"""Just enough GraphQL for what flybot asks api.fly.io: queries (no fragments, no mutations)
over `app(name) { name id status organization{slug name} currentReleaseUnprocessed{...}
currentRelease{...} releasesUnprocessed(first){nodes{...}} image(ref){digest ...}
addOns(type){nodes{...}} }`,
`platform { vmSizes { name cpuCores memoryMb memoryGb priceMonth priceSecond } regions {code
name} }` and `viewer { email }`. Fields are projected as asked; unknown ones are errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.fly.simulator.clock import iso
from bot.fly.simulator.state import REGIONS, Release, SimApp, SimState

SECONDS_PER_MONTH = 2_592_000
# name, cpu cores, memory MB, $/month (Fly's list prices; shared-cpu-1x is the 256 MB one)
VM_SIZES = (
    ("shared-cpu-1x", 1, 256, 1.94),
    ("shared-cpu-2x", 2, 512, 3.89),
    ("shared-cpu-4x", 4, 1024, 7.78),
    ("shared-cpu-8x", 8, 2048, 15.55),
    ("performance-1x", 1, 2048, 31.0),
    ("performance-2x", 2, 4096, 62.0),
    ("performance-4x", 4, 8192, 124.0),
    ("performance-8x", 8, 16384, 248.0),
    ("performance-16x", 16, 32768, 496.0),
)

_TOKEN = re.compile(r'\s*(\.\.\.|[{}():,!\[\]=@$]|"(?:\\.|[^"\\])*"|-?\d+(?:\.\d+)?|[A-Za-z_]\w*)')


class GraphQLError(Exception):
    def __init__(self, message: str, code: str | None = None, path: list[str] | None = None):
        super().__init__(message)
        self.message, self.code, self.path = message, code, path or []

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "path": self.path}
        if self.code:
            out["extensions"] = {"code": self.code}
        return out


@dataclass
class Field:
    name: str
    alias: str
    args: dict[str, Any] = field(default_factory=dict)
    selections: list[Field] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str, variables: dict[str, Any]) -> None:
        text = re.sub(r"#[^\n]*", "", text)
        self.tokens = [t for t in _TOKEN.findall(text) if t]
        rest = _TOKEN.sub("", text).strip()
        if rest:
            raise GraphQLError(f"Syntax error near {rest[:20]!r}")
        self.variables = variables
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise GraphQLError(f"Syntax error: expected {expected or 'more'}, got {token}")
        self.i += 1
        return token

    def document(self) -> list[Field]:
        if self.peek() in ("mutation", "subscription"):
            raise GraphQLError("the simulator answers queries only")
        if self.peek() == "query":
            self.take()
            if self.peek() not in ("(", "{"):
                self.take()  # operation name
            if self.peek() == "(":
                depth = 0
                while True:  # variable definitions: skipped, values come from `variables`
                    token = self.take()
                    depth += {"(": 1, ")": -1}.get(token, 0)
                    if depth == 0:
                        break
        fields = self.selection_set()
        if self.peek() is not None:
            raise GraphQLError("one operation per request, please")
        return fields

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            if self.peek() == "...":
                raise GraphQLError("fragments are not supported by the simulator")
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> Field:
        name = self.take()
        alias = name
        if self.peek() == ":":
            self.take()
            name = self.take()
        args = {}
        if self.peek() == "(":
            self.take()
            while self.peek() != ")":
                key = self.take()
                self.take(":")
                args[key] = self.value()
                if self.peek() == ",":
                    self.take()
            self.take(")")
        selections = self.selection_set() if self.peek() == "{" else []
        return Field(name, alias, args, selections)

    def value(self) -> Any:
        token = self.take()
        if token == "$":
            name = self.take()
            return self.variables.get(name)
        if token.startswith('"'):
            return bytes(token[1:-1], "utf-8").decode("unicode_escape")
        if token in ("true", "false"):
            return token == "true"
        if token == "null":
            return None
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if re.fullmatch(r"-?\d+\.\d+", token):
            return float(token)
        return token  # an enum value


Resolver = Callable[[dict[str, Any]], Any]


def _release(r: Release | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "id": r.id,
        "version": r.version,
        "status": r.status,
        "description": r.description,
        "imageRef": r.image,
        "createdAt": iso(r.created_at),
        "deploymentStrategy": r.strategy.upper(),
        "user": {"email": r.user},
        "stable": r.status == "complete",
        "inProgress": r.status in ("pending", "running"),
    }


def _app(state: SimState, app: SimApp) -> dict[str, Any]:
    current = _release(app.current_release())

    def releases(args: dict[str, Any]) -> dict[str, Any]:
        limit = int(args.get("first") or 25)
        items = sorted(app.releases, key=lambda r: r.version, reverse=True)[:limit]
        return {"nodes": [_release(r) for r in items], "totalCount": len(app.releases)}

    def image(args: dict[str, Any]) -> Any:
        return state.image_json(str(args.get("ref") or ""))

    def add_ons(args: dict[str, Any]) -> dict[str, Any]:
        kind = args.get("type")
        items = [a for a in app.add_ons if kind in (None, a["type"])]
        return {
            "nodes": [{k: v for k, v in a.items() if k != "type"} for a in items],
            "totalCount": len(items),
        }

    return {
        "id": app.name,
        "name": app.name,
        "internalNumericId": app.network_id,
        "status": state.app_json(app)["status"],
        "deployed": bool(state.live_machines(app)),
        "hostname": f"{app.name}.fly.dev",
        "organization": {"id": app.org.id, "slug": app.org.slug, "name": app.org.name},
        "currentRelease": current,
        "currentReleaseUnprocessed": current,
        "releasesUnprocessed": releases,
        "releases": releases,
        "image": image,
        "addOns": add_ons,
    }


def _root(state: SimState) -> dict[str, Any]:
    def app(args: dict[str, Any]) -> Any:
        found = state.apps.get(str(args.get("name") or ""))
        if found is None:
            raise GraphQLError("Could not find App", "NOT_FOUND")
        return _app(state, found)

    sizes = [
        {
            "name": name,
            "cpuCores": float(cpus),
            "memoryMb": memory,
            "memoryGb": memory / 1024,
            "maxMemoryMb": memory * (8 if name.startswith("shared") else 4),
            "memoryIncrementsMb": [256 if name.startswith("shared") else 1024],
            "priceMonth": price,
            "priceSecond": round(price / SECONDS_PER_MONTH, 10),
        }
        for name, cpus, memory, price in VM_SIZES
    ]
    return {
        "app": app,
        "platform": {
            "vmSizes": sizes,
            "regions": [{"code": code, "name": code} for code in sorted(REGIONS)],
        },
        "viewer": {"email": state.user_email, "id": "simulator-user"},
    }


def _project(value: Any, fields: list[Field], path: list[str]) -> Any:
    if isinstance(value, list):
        return [_project(v, fields, path) for v in value]
    if value is None or not fields:
        return value
    if not isinstance(value, dict):
        raise GraphQLError(f"field {path[-1]} has no subfields", path=path)
    out = {}
    for f in fields:
        here = [*path, f.alias]
        if f.name == "__typename":
            out[f.alias] = "Object"
            continue
        if f.name not in value:
            raise GraphQLError(f"Cannot query field {f.name!r}", path=here)
        item = value[f.name]
        try:
            item = item(f.args) if callable(item) else item
        except GraphQLError as exc:
            exc.path = here
            raise
        out[f.alias] = _project(item, f.selections, here)
    return out


def execute(state: SimState, body: Any) -> dict[str, Any]:
    """A GraphQL response document for a request body `{query, variables}`."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return {"errors": [{"message": "Must provide query string."}]}
    variables = body.get("variables") or {}
    try:
        fields = _Parser(body["query"], variables if isinstance(variables, dict) else {}).document()
    except GraphQLError as exc:
        return {"errors": [exc.to_json()]}
    root = _root(state)
    data: dict[str, Any] = {}
    errors = []
    for f in fields:
        try:
            data.update(_project(root, [f], []))
        except GraphQLError as exc:
            data[f.alias] = None
            errors.append(exc.to_json())
    return {"data": data, "errors": errors} if errors else {"data": data}
