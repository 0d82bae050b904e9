"""Docs that cannot drift: README's generated sections, its commands, recipes and the schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from xdsgen import docs
from xdsgen.cli import main
from xdsgen.errors import EXIT_CODES
from xdsgen.pipeline import load_model

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
SCHEMA = json.loads((REPO / "schemas" / "inventory.schema.json").read_text())
REGENERATE = "README is stale: run `.venv/bin/python -m xdsgen.docs` and commit README.md"


@pytest.mark.parametrize("name", docs.SECTIONS)
def test_generated_section_is_current(name: str) -> None:
    have = docs.current_sections(README)[name]
    assert have is not None, f"README lacks the {name} markers"
    assert have.strip() == docs.generate()[name].strip(), REGENERATE


def test_check_mode_and_update_are_consistent(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(README.replace("| 6 |", "| 7 |"))
    assert docs.main(["--check", str(stale)]) == 1
    assert docs.main([str(stale)]) == 0
    assert stale.read_text() == README
    assert docs.main(["--check", str(stale)]) == 0


def test_exit_code_table_matches_errors() -> None:
    section = docs.current_sections(README)["exit-codes"] or ""
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", section, re.M))
    assert {int(k): v.replace("\\|", "|") for k, v in rows.items()} == EXIT_CODES


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    section = docs.current_sections(README)["cli-reference"] or ""
    commands = list(main.commands.items())
    for name, group in list(commands):  # a group's own commands (certs list, certs renew)
        commands += [(f"{name} {sub}", c) for sub, c in getattr(group, "commands", {}).items()]
    for name, command in commands:
        assert f"### `xdsgen {name}`" in section
        for param in command.params:
            if getattr(param, "hidden", False):  # older spellings kept working, not shown
                continue
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in section, f"{name} {opt}"


def walk_properties() -> list[tuple[str, dict[str, Any]]]:
    return [(path, node) for path, node, _ in docs.walk(SCHEMA)]


def test_every_schema_property_has_a_description_and_valid_examples() -> None:
    paths = walk_properties()
    assert len(paths) > 40
    for path, node in paths:
        description = docs.lookup(SCHEMA, node, "description")
        examples = docs.lookup(SCHEMA, node, "examples")
        assert description and len(description) > 10, f"{path}: no description"
        assert examples, f"{path}: no examples"
        validator = jsonschema.Draft202012Validator({**node, "$defs": SCHEMA["$defs"]})
        for example in examples:
            errors = list(validator.iter_errors(example))
            assert not errors, f"{path}: example {example!r} is invalid: {errors[0].message}"


def test_inventory_reference_lists_every_property() -> None:
    section = docs.current_sections(README)["inventory-reference"] or ""
    for path, _ in walk_properties():
        assert f"| `{path}`" in section, path
    for key in ("upstreams.NAME.endpoints", "http[].routes[].websocket", "tcp[].families"):
        assert f"| `{key}`" in section


def test_schema_command_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xdsgen", "schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert json.loads(out) == SCHEMA
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def ci_commands() -> list[str]:
    """What .ci/run runs, without its comments and its shell preamble."""
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    preamble = ("#", "set -", 'cd "$(dirname "$0")/.."')
    return [line for line in lines if line and not line.startswith(preamble)]


def test_readme_test_command_is_exactly_what_ci_runs() -> None:
    assert ci_commands() == ["scripts/test"]
    paragraph = r"^Run the whole test suite[^\n]*(?:\n[^\n]+)*:\n\n    scripts/test\n"
    assert re.search(paragraph, README, re.M)


def test_readme_install_and_run_command() -> None:
    """The first set-up command: a virtualenv in the checkout (no pip into Debian's
    system Python), the example rendered. tests/test_packaging.py runs it."""
    assert (
        "\n    python3 -m venv .venv && .venv/bin/pip install -q . && "
        ".venv/bin/xdsgen render examples/home-router.yaml -o out/\n"
    ) in README
    assert "\n    apt-get update && apt-get install -y python3-venv git\n" in README
    # PyPI only "once published": every `install xdsgen` is in that one paragraph.
    later = README.split("\nOnce xdsgen is published on PyPI, ", 1)
    assert len(later) == 2 and "install xdsgen" in later[1].split("\n\n", 1)[0]
    assert "install xdsgen" not in later[0] + later[1].split("\n\n", 1)[1]


def yaml_blocks() -> list[str]:
    return [
        b
        for b in re.findall(r"```yaml\n(.*?)```", README, re.S)
        if re.search(r"^version: 1$", b, re.M)
    ]


def test_every_recipe_is_a_valid_inventory(tmp_path: Path) -> None:
    blocks = yaml_blocks()
    assert len(blocks) >= 6
    for index, block in enumerate(blocks):
        path = tmp_path / f"recipe{index}.yaml"
        path.write_text(block)
        load_model(str(path))  # raises InventoryError with every problem


def test_readme_sections_and_recipes_are_there() -> None:
    for heading in (
        "## Install",
        "## Quick start",
        "## Editor support",
        "## Inventory reference",
        "## CLI reference",
        "## Exit codes",
        "## Recipes",
        "## Troubleshooting",
    ):
        assert f"\n{heading}\n" in README, heading
    for recipe in (
        "Grafana under a sub-path",
        "Home Assistant with websockets",
        "TLS passthrough",
        "SMB on another port, IPv4 only",
        "Certificate renewal with acme.sh",
    ):
        assert recipe in README, recipe
    for trouble in ("Envoy ignores my edit", "single-file bind mount", "uhttpd"):
        assert trouble in README, trouble
    for path in re.findall(r"`(examples/[^`]+?)`", README):
        assert (REPO / path.split()[0]).exists(), path


def test_benchmark_results_moved_out_with_a_short_table_left() -> None:
    """README keeps the rows with a target; benchmarks/README.md has the method and every
    row, both exactly what `run.py --markdown` prints from the latest result file."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import run as bench
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    latest = json.loads((REPO / "benchmarks" / "results" / "latest.json").read_text())
    table = bench.markdown(latest).strip().splitlines()
    with_targets = [row for row in table[2:] if row.split("|")[-3].strip()]
    assert len(with_targets) >= 10
    section = README.split("\n## Benchmarks\n", 1)[1]
    assert re.findall(r"^\|.*\|$", section, re.M) == table[:2] + with_targets
    assert "`benchmarks/README.md`" in section
    full = (REPO / "benchmarks" / "README.md").read_text()
    assert "\n".join(table) in full
    for internals in ("How it measures", "_LAUNCHER", "Where a 10 000-vhost render goes"):
        assert internals in full and internals not in README, internals


def test_newcomer_sections_are_there() -> None:
    for heading in (
        "## What backends receive",
        "### Test a vhost before DNS points at it",
        "### Cron",
    ):
        assert f"\n{heading}\n" in README, heading
    for path in ("examples/systemd/README.md", "benchmarks/README.md"):
        assert (REPO / path).is_file(), path
