"""examples/docker serves HTTP/3 (issue 15): host networking publishes every port Envoy
binds, UDP too; the ports a bridge network would need are listed, and they are exactly
the listeners'; the certificates are mounted where the files name them."""

from __future__ import annotations

import ast
import posixpath
import re
from pathlib import Path

import yaml

from xdsgen.pipeline import load_model

DOCKER = Path(__file__).resolve().parent.parent / "examples" / "docker"


def test_the_listed_ports_are_exactly_the_listeners() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    service = yaml.safe_load(text)["services"]["envoy"]
    assert service["network_mode"] == "host"  # publishes UDP as it is
    (listed,) = re.findall(r"#\s+ports: (\[.*\])", text)
    published = set()
    for entry in ast.literal_eval(listed):
        outside, inside = entry.split(":")
        port, protocol = inside.split("/")
        assert outside == port
        published.add((int(port), protocol))
    model = load_model(str(DOCKER / "inventory.yaml"))
    listening = {(item.port, item.protocol.lower()) for item in model.listeners}
    assert published == listening
    assert (8443, "udp") in listening  # HTTP/3 (QUIC)
    assert {item.kind for item in model.listeners} == {"http", "https", "http3"}


def test_the_certificates_are_mounted_at_their_own_path() -> None:
    service = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]["envoy"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    model = load_model(str(DOCKER / "inventory.yaml"))
    for secret in model.secrets:
        for path in (secret.cert, secret.key):
            inside = next(d for d in mounts if path.startswith(d.rstrip("/") + "/"))
            assert mounts[inside] == inside, "mounted at the same path as on the host"
            assert posixpath.isabs(path)
