"""Export an inventory to where its users go when one box is not enough.

- `k8s` (xdsgen.export.k8s): the same xDS files in a ConfigMap for a fleet of Envoys.
- `gateway-api` (xdsgen.export.gateway): Gateway API and Envoy Gateway objects.

Both print multi-document YAML and list what does not map (xdsgen.export.differences);
only xdsgen.export.source reads xdsgen's model.
"""

from __future__ import annotations

from typing import Optional

from xdsgen.errors import IOProblem


def write_output(text: str, output: Optional[str], private: bool) -> None:
    """Write the manifests to `output` atomically; 0600 when they carry private keys."""
    from xdsgen.files import write_atomic

    try:
        write_atomic(output or "", text, mode=0o600 if private else 0o644)
    except OSError as exc:  # pragma: no cover - write_atomic maps the usual ones
        raise IOProblem(f"cannot write {output}: {exc.strerror}") from None
