"""Golden files: tests/cases/<name>/inventory.yaml renders to exactly tests/cases/<name>/expected/.

Regenerate after an intended change with: pytest tests/test_golden.py --update-goldens
(and read the diff before committing it).
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from xdsgen.pipeline import load_model, render
from xdsgen.render import render_bootstrap

CASES = Path(__file__).parent / "cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "inventory.yaml").is_file())


def rendered_files(case: Path) -> dict[str, str]:
    model = load_model(str(case / "inventory.yaml"))
    files = dict(render(model).files)
    files["bootstrap.yaml"] = render_bootstrap(model)
    return files


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden(name: str, update_goldens: bool) -> None:
    case = CASES / name
    expected_dir = case / "expected"
    files = rendered_files(case)
    if update_goldens:
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir()
        for file_name, text in files.items():
            (expected_dir / file_name).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(expected_dir.glob("*.yaml"))}
    assert sorted(expected) == sorted(files), "a different set of files was rendered"
    for file_name, text in files.items():
        if text != expected[file_name]:
            diff = "".join(
                difflib.unified_diff(
                    expected[file_name].splitlines(True),
                    text.splitlines(True),
                    f"expected/{file_name}",
                    f"rendered/{file_name}",
                )
            )
            pytest.fail(
                f"{name}/{file_name} differs from the golden file "
                f"(--update-goldens to accept):\n{diff}"
            )


def test_render_is_deterministic() -> None:
    for name in CASE_NAMES:
        assert rendered_files(CASES / name) == rendered_files(CASES / name)
