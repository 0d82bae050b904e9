"""Kubernetes manifests as text: multi-document YAML that `kubectl apply -f` takes, and
object names Kubernetes accepts.

Every string value is written double-quoted (YAML 1.1 would read a bare `on`, `0755` or
`1e3` as something else) or, when it spans lines (a whole xDS file), as a literal block;
keys are plain only when no reader could retype them. The text is parsed back and
compared with the objects before anyone sees it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from xdsgen.errors import RenderError

_PLAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-/]*$")
# Words YAML 1.1 resolves to booleans or null, in any case.
_RETYPED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"])
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value.rstrip("\n") else '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    def represent_dict(dumper: Any, value: dict[str, Any]) -> Any:
        pairs = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise RenderError(f"manifest key {key!r} is not a string (an xdsgen bug)")
            if _PLAIN_KEY.match(key) and key.lower() not in _RETYPED:
                key_node = dumper.represent_scalar("tag:yaml.org,2002:str", key, style="")
            else:
                key_node = dumper.represent_scalar("tag:yaml.org,2002:str", key, style='"')
            pairs.append((key_node, dumper.represent_data(item)))
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs, flow_style=False)

    Dumper.add_representer(str, represent_str)
    Dumper.add_representer(dict, represent_dict)
    return Dumper


def dump_documents(documents: list[dict[str, Any]]) -> str:
    """One YAML stream, `---` between objects; parsed back and compared before returning."""
    import yaml

    dumper = _dumper()
    parts = [
        yaml.dump(doc, Dumper=dumper, sort_keys=False, width=1_000_000, allow_unicode=True)
        for doc in documents
    ]
    text = "".join(f"---\n{part}" for part in parts)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if list(yaml.load_all(text, Loader=loader)) != documents:
        raise RenderError(
            "the exported YAML does not parse back to the same objects (an xdsgen bug, "
            "please report it; nothing was written)"
        )
    return text


# --------------------------------------------------------------------------- names


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:6]


def dns_name(text: str, max_length: int = 63, dots: bool = False) -> str:
    """`text` as a DNS label (or, with dots, a DNS subdomain): lowercase letters, digits and
    '-'. Anything else becomes '-'; too long a name keeps its start and a hash of it all."""
    allowed = r"[^a-z0-9.\-]" if dots else r"[^a-z0-9\-]"
    name = re.sub(allowed, "-", text.lower())
    name = re.sub(r"-{2,}", "-", name)
    if dots:
        name = re.sub(r"\.{2,}", ".", name)
        name = re.sub(r"-*\.-*", ".", name)
    name = name.strip("-.")
    if len(name) > max_length:
        name = name[: max_length - 7].rstrip("-.") + "-" + _short_hash(text)
    return name or "x" + _short_hash(text)


class Names:
    """Unique object names per kind: the same wish gives the same name; two different
    wishes that sanitize alike both get a hash of what was asked for."""

    def __init__(self, max_length: int = 63, dots: bool = False):
        self.max_length = max_length
        self.dots = dots
        self.given: dict[str, str] = {}  # wish -> name
        self.owners: dict[str, str] = {}  # name -> wish

    def __call__(self, wish: str) -> str:
        if wish in self.given:
            return self.given[wish]
        name = dns_name(wish, self.max_length, self.dots)
        if self.owners.get(name, wish) != wish:
            suffix = "-" + _short_hash(wish)
            name = name[: self.max_length - len(suffix)].rstrip("-.") + suffix
        self.given[wish] = name
        self.owners[name] = wish
        return name


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def metadata(
    name: str, namespace: str | None, labels: dict[str, str], **extra: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    meta.update(extra)
    return meta
