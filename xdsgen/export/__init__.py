"""Export an inventory to where its users go when one box is not enough.

- `k8s` (xdsgen.export.k8s): the same xDS files in a ConfigMap for a fleet of Envoys.
- `gateway-api` (xdsgen.export.gateway): Gateway API and Envoy Gateway objects.

Both print multi-document YAML and list what does not map (xdsgen.export.differences);
only xdsgen.export.source (with the feature views of xdsgen.export.features) reads
xdsgen's model.
"""

from __future__ import annotations


def write_output(text: str, output: str, private: bool) -> None:
    """Write the manifests to `output` atomically (IOProblem when it cannot); 0600 when
    they carry private keys."""
    from xdsgen.files import replace_file

    replace_file(output, text, mode=0o600 if private else 0o644)
