"""The shape of the code, kept by tests: the pipeline in the file tree, no import cycles,
no convention written twice, one defaults table tied to the schema, modules and functions
a person can read."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from xdsgen import spec

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "xdsgen"
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Longer functions, each for a reason (a test fails when one is added without one).
LONG_FUNCTIONS = {
    "yamlsubset._parse_lines": "the parse-back hot path: one flat loop is twice as fast",
    "schema_errors._describe": "one branch per JSON Schema keyword, in one place",
    "safeyaml.read_text": "every refusal before parsing, in the order they are checked",
    "export.k8s._workload": "one Kubernetes object built in one place",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _is_module(name: str) -> bool:
    base = PACKAGE / Path(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    """xdsgen modules this module imports, at the top level or inside functions
    (`from xdsgen.model import certificates` is an import of model.certificates)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "xdsgen" or node.module.startswith("xdsgen."):
                base = node.module[len("xdsgen") :].lstrip(".")
                names = [f"{base}.{a.name}" if base else a.name for a in node.names]
                submodules = [n for n in names if _is_module(n)]
                found.update(submodules)
                if len(submodules) < len(names) and base:
                    found.add(base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("xdsgen."):
                    found.add(alias.name[len("xdsgen.") :])
    return found


def test_the_pipeline_is_in_the_file_tree() -> None:
    """inventory -> spec -> model parts -> Envoy's conventions -> templates -> live apply."""
    for path in (
        "xdsgen/inventory.py",
        "xdsgen/spec.py",
        "xdsgen/model/__init__.py",
        "xdsgen/model/ir.py",
        "xdsgen/conventions.py",
        "templates/lds.yaml.j2",
        "xdsgen/render.py",
        "xdsgen/live/orchestrate.py",
        "xdsgen/report/__init__.py",
        "xdsgen/cli/__init__.py",
    ):
        assert (REPO / path).exists(), path


def test_no_import_cycles() -> None:
    """Between modules (a package's __init__ importing its own parts is not a cycle)."""
    graph = {module_name(p): imports_of(p) for p in SOURCES}
    modules = set(graph)

    def edges(name: str) -> set[str]:
        out = set()
        for target in graph.get(name, ()):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # A package importing its own parts registers or re-exports them.
            if target and target != name and not target.startswith(f"{name}."):
                out.add(target)
        return out

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(edges(name)):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


# Conventions that live only in xdsgen/conventions.py (the file names, the version line,
# Envoy's stat names). A string matching one elsewhere in the code means a second home.
CONVENTION_PATTERNS = {
    "xDS file names": re.compile(r"""["'](?:cds|lds)\.yaml["']|f["']rds_\{|f["']sds_\{"""),
    "the version line": re.compile(r"""["']version_info: """),
    "Envoy's stat names": re.compile(r"""["'](?:cluster_manager\.cds|listener_manager\.lds)"""),
}
# Modules that read other people's Envoy configs or write Kubernetes objects name these
# files as data, not as xdsgen's convention.
CONVENTION_READERS = ("importer", "export", "conventions")


@pytest.mark.parametrize("what", sorted(CONVENTION_PATTERNS))
def test_each_convention_has_one_home(what: str) -> None:
    pattern = CONVENTION_PATTERNS[what]
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in SOURCES
        if not module_name(path).startswith(CONVENTION_READERS)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.strip().startswith("#")
    ]
    assert found == [], f"{what} written outside xdsgen/conventions.py:\n" + "\n".join(found)


def schema_defaults() -> dict[str, Any]:
    """Every `default` of the schema, keyed like spec.DEFAULTS (`*` a name, `[]` an item)."""
    schema = json.loads((REPO / "schemas" / "inventory.schema.json").read_text())
    defs = schema["$defs"]
    found: dict[str, Any] = {}

    def walk(node: Any, path: str, seen: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(defs[name], path, (*seen, name))
        if "default" in node and path:
            found[path] = node["default"]
        for key, child in (node.get("properties") or {}).items():
            # listen.ipv4 and listen.ipv6 share one definition: DEFAULTS says listen.*.
            name = "*" if path == "listen" else key
            walk(child, f"{path}.{name}" if path else name, seen)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.*", seen)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]", seen)
        for key in ("oneOf", "anyOf", "allOf"):
            for child in node.get(key) or []:
                walk(child, path, seen)

    walk(schema, "", ())
    return found


def test_one_defaults_table_tied_to_the_schema() -> None:
    assert schema_defaults() == spec.DEFAULTS


def test_modules_and_functions_a_person_can_read() -> None:
    long_modules = [
        f"{p.relative_to(REPO)}: {n} lines"
        for p in SOURCES
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long_modules == []
    long_functions = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions[f"{module_name(path)}.{node.name}"] = length
    assert set(long_functions) <= set(LONG_FUNCTIONS), long_functions
