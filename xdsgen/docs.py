"""README sections that are generated, so they cannot drift from the code.

- inventory-reference: every property of schemas/inventory.schema.json, with its type,
  default, description and first example;
- cli-reference: every command's --help, at a fixed width;
- exit-codes: errors.EXIT_CODES.

README.md marks each section with `<!-- BEGIN generated: NAME -->` and
`<!-- END generated: NAME -->`. `python -m xdsgen.docs` rewrites them;
`python -m xdsgen.docs --check` (and tests/test_docs.py) fails when one is stale.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

HELP_WIDTH = 100
BEGIN = "<!-- BEGIN generated: {} -->"
END = "<!-- END generated: {} -->"
SECTIONS = ("inventory-reference", "cli-reference", "exit-codes")
REF_TYPES = {
    "endpoint": "HOST:PORT",
    "duration": "duration",
    "period": "duration (d, h, m, s)",
    "file_path": "path",
    "name": "name",
    "domain": "domain",
    "port": "port",
    "families": "list of ipv4/ipv6",
    "family_listen": "mapping",
    "upstream_tls": "mapping",
    "upstream": "HOST:PORT or mapping",
    "certificate": "mapping",
    "acme": "mapping",
    "route": "mapping",
    "vhost": "mapping",
    "passthrough": "mapping",
    "port_map": "mapping",
    "patch": "mapping",
}


# --------------------------------------------------------------------------- schema


def load_schema() -> dict[str, Any]:
    from xdsgen import resources

    return dict(json.loads(resources.read_text("schemas", "inventory.schema.json")))


def _ref_name(node: dict[str, Any]) -> Optional[str]:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node and every schema its $ref chain leads to (the node first)."""
    chain = [node]
    while _ref_name(chain[-1]):
        chain.append(schema["$defs"][_ref_name(chain[-1])])
    return chain


def lookup(schema: dict[str, Any], node: dict[str, Any], key: str) -> Any:
    for item in resolve(schema, node):
        if key in item:
            return item[key]
    return None


def type_label(schema: dict[str, Any], node: dict[str, Any]) -> str:
    name = _ref_name(node)
    if name in REF_TYPES:
        return REF_TYPES[name]
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " or ".join(json.dumps(v) for v in node["enum"])
    if "anyOf" in node or "oneOf" in node:
        return " or ".join(
            type_label(schema, alt) for alt in node.get("anyOf", node.get("oneOf", []))
        )
    kind = node.get("type")
    if kind == "array":
        return "list of " + type_label(schema, node.get("items", {}))
    if kind == "object":
        return "mapping"
    return str(kind or "any")


def walk(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(key path, property schema, required) for every property, in schema order.

    Paths read like the inventory: `envoy.admin`, `upstreams.NAME.endpoints`,
    `http[].routes[].prefix`."""

    def visit(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
        for item in resolve(schema, node):
            required = set(item.get("required", []))
            for key, sub in (item.get("properties") or {}).items():
                sub_path = f"{path}.{key}" if path else key
                yield sub_path, sub, key in required
                yield from visit(sub, sub_path)
            extra = item.get("additionalProperties")
            if isinstance(extra, dict):
                yield from visit(extra, f"{path}.NAME")
            items = item.get("items")
            if isinstance(items, dict):
                yield from visit(items, f"{path}[]")
            for alt in item.get("oneOf", []) + item.get("anyOf", []):
                yield from visit(alt, path)

    seen = set()
    for path, node, required in visit(schema, ""):
        if path not in seen:
            seen.add(path)
            yield path, node, required


def _inline_yaml(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def inventory_reference() -> str:
    schema = load_schema()
    lines = [
        "| key | type | default | description | example |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path, node, required in walk(schema):
        description = lookup(schema, node, "description") or ""
        examples = lookup(schema, node, "examples") or []
        default = lookup(schema, node, "default")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{path}`" + (" (required)" if required else ""),
                    _cell(type_label(schema, node)),
                    "" if default is None else f"`{_cell(_inline_yaml(default))}`",
                    _cell(description),
                    f"`{_cell(_inline_yaml(examples[0]))}`" if examples else "",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def command_help(path: list[str]) -> str:
    from xdsgen.cli import main

    # make_context applies each command's context_settings (-h, the width); resilient
    # parsing lets a command with required arguments give its help without them.
    width: dict[str, Any] = {"terminal_width": HELP_WIDTH, "max_content_width": HELP_WIDTH}
    ctx = main.make_context("xdsgen", [], resilient_parsing=True, **width)
    command: Any = main
    for name in path:
        command = command.commands[name]
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True, **width)
    return str(command.get_help(ctx))


def cli_reference() -> str:
    from xdsgen.cli import main

    paths: list[list[str]] = [[]]
    for name in sorted(main.commands):
        paths.append([name])
        # A group's own commands (export k8s, certs renew, ...) get their own sections.
        paths += [[name, sub] for sub in sorted(getattr(main.commands[name], "commands", {}))]
    parts = []
    for path in paths:
        title = " ".join(["xdsgen", *path])
        parts.append(f"### `{title}`\n\n```text\n{command_help(path)}\n```")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- exit codes


def exit_codes() -> str:
    from xdsgen.errors import EXIT_CODES

    lines = ["| code | meaning |", "| --- | --- |"]
    lines += [f"| {code} | {_cell(text)} |" for code, text in sorted(EXIT_CODES.items())]
    return "\n".join(lines)


# --------------------------------------------------------------------------- README


def generate() -> dict[str, str]:
    return {
        "inventory-reference": inventory_reference(),
        "cli-reference": cli_reference(),
        "exit-codes": exit_codes(),
    }


def section_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        re.escape(BEGIN.format(name)) + r"\n(.*?)\n?" + re.escape(END.format(name)), re.S
    )


def current_sections(text: str) -> dict[str, Optional[str]]:
    found: dict[str, Optional[str]] = {}
    for name in SECTIONS:
        match = section_pattern(name).search(text)
        found[name] = match.group(1).strip("\n") if match else None
    return found


def update(text: str, generated: Optional[dict[str, str]] = None) -> str:
    generated = generated or generate()
    for name, body in generated.items():
        pattern = section_pattern(name)
        if not pattern.search(text):
            raise ValueError(f"README has no {BEGIN.format(name)} ... {END.format(name)} markers")
        replacement = f"{BEGIN.format(name)}\n\n{body}\n\n{END.format(name)}"
        match = pattern.search(text)
        assert match is not None
        text = text[: match.start()] + replacement + text[match.end() :]
    return text


def stale(text: str) -> list[str]:
    generated = generate()
    have = current_sections(text)
    return [name for name in SECTIONS if (have[name] or "").strip() != generated[name].strip()]


def main(argv: Optional[list[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    readme = Path(paths[0] if paths else Path(__file__).resolve().parent.parent / "README.md")
    text = readme.read_text(encoding="utf-8")
    if check:
        names = stale(text)
        if names:
            print(
                f"{readme}: stale generated sections: {', '.join(names)} "
                "(run: python -m xdsgen.docs)",
                file=sys.stderr,
            )
            return 1
        return 0
    new = update(text)
    if new != text:
        readme.write_text(new, encoding="utf-8")
        print(f"updated {readme}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
