"""Golden files per feature: tests/export_cases/<name>/inventory.yaml exports to exactly
k8s.yaml and gateway-api.yaml, with the differences and exit codes in differences.txt.

Regenerate after an intended change with: pytest tests/test_export_golden.py --update-goldens
(and read the diff before committing it).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from xdsgen.errors import EXIT_DIFFERS, EXIT_OK
from xdsgen.export.gateway import GatewayOptions, export_gateway_api
from xdsgen.export.k8s import K8sOptions, export_k8s
from xdsgen.export.source import load

CASES = Path(__file__).parent / "export_cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "inventory.yaml").is_file())


def exported(case: Path) -> dict[str, str]:
    source = load(str(case / "inventory.yaml"))
    k8s = export_k8s(source, K8sOptions())
    gateway = export_gateway_api(source, GatewayOptions())
    lines = []
    for command, result in (("k8s", k8s), ("gateway-api", gateway)):
        code = EXIT_DIFFERS if result.report.differs else EXIT_OK
        lines.append(f"# xdsgen export {command}: exit {code}")
        lines += result.report.lines()
    return {
        "k8s.yaml": k8s.text,
        "gateway-api.yaml": gateway.text,
        "differences.txt": "\n".join(lines) + "\n",
    }


@pytest.mark.parametrize("name", CASE_NAMES)
def test_export_golden(name: str, update_goldens: bool) -> None:
    case = CASES / name
    files = exported(case)
    if update_goldens:
        for file_name, text in files.items():
            (case / file_name).write_text(text)
    for file_name, text in files.items():
        expected = (case / file_name).read_text()
        if text != expected:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(True), text.splitlines(True), file_name, "exported"
                )
            )
            pytest.fail(f"{name}/{file_name} differs (--update-goldens to accept):\n{diff}")


def test_export_is_deterministic() -> None:
    for name in CASE_NAMES:
        assert exported(CASES / name) == exported(CASES / name)


def test_golden_cases_cover_both_exit_codes() -> None:
    texts = [(CASES / n / "differences.txt").read_text() for n in CASE_NAMES]
    assert any("gateway-api: exit 0" in t for t in texts)
    assert any("gateway-api: exit 7" in t for t in texts)
    assert any("k8s: exit 0" in t for t in texts)
    assert any("k8s: exit 7" in t for t in texts)
