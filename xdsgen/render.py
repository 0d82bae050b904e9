"""Render the model through the Jinja templates, then prove the output means the model.

Templates only loop and print. Every printed value must pass through one of the filters
`q` (a string as a double-quoted YAML scalar), `num` (an int), `key` (a fixed key) or `word`
(a flag or a fixed enum word);
`finalize` refuses anything else, so no inventory string can reach the YAML unquoted.
After rendering, each file is parsed back and its meaning compared with the model
(`verify`): a mismatch is an xdsgen bug and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from xdsgen import resources
from xdsgen.conventions import BARE_KEYS, BARE_WORDS, CDS_FILE, LDS_FILE, file_version, versioned
from xdsgen.errors import RenderError
from xdsgen.model import Model


class _Safe(str):
    """A string that a filter made safe to print into YAML."""


# q's results during one render, by the exact string: a 10 000-vhost config prints ~226 000
# strings, ~36 000 of them distinct (cluster names, "/", timeouts...). Cleared by every
# render, so a long-lived watcher keeps only the last config's strings.
_QUOTED: dict[str, _Safe] = {}


def yaml_quote(value: object) -> _Safe:
    if type(value) is str:
        found = _QUOTED.get(value)
        if found is not None:
            return found
    elif not isinstance(value, str):
        raise RenderError(f"template bug: q filter got {type(value).__name__} {value!r}")
    from xdsgen.yamlsubset import quote

    try:
        quoted = _Safe(quote(value))
    except ValueError as exc:  # a lone surrogate: the loader refuses those, so a bug
        raise RenderError(str(exc)) from None
    if type(value) is str:
        _QUOTED[value] = quoted
    return quoted


def yaml_int(value: object) -> _Safe:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RenderError(f"template bug: num filter got {type(value).__name__} {value!r}")
    return _Safe(str(value))


def yaml_key(value: object) -> _Safe:
    if value not in BARE_KEYS:
        raise RenderError(f"template bug: key filter got {value!r}")
    return _Safe(str(value))


def yaml_word(value: object) -> _Safe:
    """A flag (true/false) or one of the enum words xdsgen itself chose (AUTO)."""
    if isinstance(value, bool):
        return _Safe("true" if value else "false")
    if value not in BARE_WORDS:
        raise RenderError(f"template bug: word filter got {value!r}")
    return _Safe(str(value))


def _finalize(value: object) -> object:
    if isinstance(value, _Safe):
        return value
    raise RenderError(f"template bug: {value!r} printed without the q/num/key filter")


_ENV: dict[str, Any] = {}


def environment() -> Any:
    """The Jinja environment, built once per process (imported lazily: --help stays fast)."""
    if "env" not in _ENV:
        import jinja2

        from xdsgen.cache import jinja_bytecode_cache

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resources.directory("templates"))),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            finalize=_finalize,
            auto_reload=False,
            bytecode_cache=jinja_bytecode_cache(),  # no .pyc on OpenWrt: keep compiled templates
        )
        env.filters.update(q=yaml_quote, num=yaml_int, key=yaml_key, word=yaml_word)
        _ENV["env"] = env
    return _ENV["env"]


def _template(name: str) -> Any:
    return environment().get_template(name)


_with_version = versioned


@dataclass(frozen=True)
class Rendered:
    """File name -> text, for every file Envoy reads from the config directory."""

    files: dict[str, str]

    @property
    def cds(self) -> str:
        return self.files[CDS_FILE]

    @property
    def lds(self) -> str:
        return self.files[LDS_FILE]

    def version(self, name: str) -> str:
        return file_version(self.files[name]) or ""


def render(model: Model, check: bool = True) -> Rendered:
    """Render every xDS file; with `check`, parse each back and compare it with the model."""
    from xdsgen.speed import gc_paused

    with gc_paused():  # see xdsgen/speed.py
        return _render(model, check)


def _render(model: Model, check: bool) -> Rendered:
    _QUOTED.clear()
    try:
        return _render_files(model, check)
    finally:
        _QUOTED.clear()


def _render_files(model: Model, check: bool) -> Rendered:
    jobs = _jobs(model)
    from xdsgen.render_parallel import render_in_pair

    verified = (lambda name, text: _verified(model, name, text)) if check else None
    files = render_in_pair(model, jobs, verified)  # None: one process renders them all
    if files is None:
        files = {name: make() for name, make in jobs}
        if check:
            verify(model, Rendered(files))
    elif check:
        _check_names(model, files)
    rendered = Rendered(dict(sorted(files.items())))
    if model.patches:
        # The user's own Envoy config, merged last: verify checked what xdsgen decided.
        from xdsgen.patching import apply_patches

        rendered = Rendered(apply_patches(rendered.files, model.patches))
    return rendered


Job = tuple[str, Callable[[], str]]


def _jobs(model: Model) -> list[Job]:
    """Every file as (name, what renders it), the templates loaded already."""
    cds, lds = _template("cds.yaml.j2"), _template("lds.yaml.j2")
    rds, sds = _template("rds.yaml.j2"), _template("sds.yaml.j2")

    def rendering(template: Any, **context: Any) -> Callable[[], str]:
        return lambda: _with_version(template.render(**context))

    jobs = [(CDS_FILE, rendering(cds, model=model)), (LDS_FILE, rendering(lds, model=model))]
    jobs += [(rc.file_name, rendering(rds, rc=rc)) for rc in model.route_configs]
    jobs += [(s.file_name, rendering(sds, secret=s)) for s in model.secrets]
    return jobs


def render_bootstrap(model: Model) -> str:
    text = str(_template("bootstrap.yaml.j2").render(model=model))
    parsed = load_yaml(text)
    envoy = model.envoy
    expected = {
        "admin": (envoy.admin_envoy_path, envoy.admin_socket_mode)
        if envoy.admin.is_unix
        else (envoy.admin.host, envoy.admin.port),
        "paths": (model.cds_path, model.lds_path),
        "watched": (envoy.watched_directory, envoy.watched_directory),
    }
    address = parsed["admin"]["address"]
    dyn = parsed["dynamic_resources"]
    got = {
        "admin": (address["pipe"]["path"], address["pipe"]["mode"])
        if "pipe" in address
        else (address["socket_address"]["address"], address["socket_address"]["port_value"]),
        "paths": (
            dyn["cds_config"]["path_config_source"]["path"],
            dyn["lds_config"]["path_config_source"]["path"],
        ),
        "watched": tuple(
            (dyn[k]["path_config_source"].get("watched_directory") or {}).get("path")
            for k in ("cds_config", "lds_config")
        ),
    }
    if got != expected:
        raise RenderError(f"bootstrap does not match the model: {got} != {expected}")
    return text


# --------------------------------------------------------------------------- verification


def load_yaml(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


# Files up to this size are also read by PyYAML, which must agree with the strict parser:
# a second, independent reader for every config of home-router size, at no real cost.
_CROSS_CHECK_BYTES = 256 * 1024


def parse_back(text: str) -> Any:
    """Read a rendered file back for verify: xdsgen.yamlsubset, a strict parser of exactly
    the YAML the templates write (PyYAML takes longer than Envoy on a 10 000-vhost config;
    see that module). Raises ValueError (SubsetError) for anything outside the subset."""
    from xdsgen.yamlsubset import SubsetError, parse

    doc = parse(text)
    if len(text) <= _CROSS_CHECK_BYTES and load_yaml(text) != doc:
        raise SubsetError(0, "PyYAML reads the file differently")
    from xdsgen.parsed import remember

    remember(text, doc)  # the plan and the confirmer use it: parsed once per process
    return doc


_BUG = "an xdsgen bug, please report it; nothing was written"


def verify(model: Model, rendered: Rendered) -> None:
    """Parse every rendered file back and compare what it means with the model.

    Runs on every render, in production too: a difference is a bug in xdsgen (a template,
    a filter), reported as RenderError before anything is written."""
    try:
        _check_names(model, rendered.files)
        for name in expected_files(model):
            verify_file(model, name, rendered.files[name])
    except RenderError as exc:
        raise as_bug(exc) from None


def as_bug(exc: RenderError) -> RenderError:
    text = str(exc)
    return RenderError(text if _BUG in text else f"{text} ({_BUG})")


def expected_files(model: Model) -> list[str]:
    """The files the model makes, in the order verify checks them."""
    names = [CDS_FILE, LDS_FILE, *(rc.file_name for rc in model.route_configs)]
    return names + [s.file_name for s in model.secrets]


def _check_names(model: Model, files: dict[str, str]) -> None:
    expected = set(expected_files(model))
    if expected != set(files):
        raise as_bug(RenderError(f"rendered files {sorted(files)} != {sorted(expected)}"))


def _verified(model: Model, name: str, text: str) -> Any:
    try:
        return verify_file(model, name, text)
    except RenderError as exc:
        raise as_bug(exc) from None


def verify_file(model: Model, name: str, text: str) -> Any:
    """Parse one rendered file back (once) and compare what it means with the model;
    returns the parsed document. RenderError for any difference."""
    doc: Any = None
    from xdsgen.file_facts import file_checks

    for parse, expected in file_checks(model, name):
        try:
            if doc is None:
                doc = parse_back(text)
            got = parse(doc)
        except RenderError:
            raise
        except Exception as exc:  # any shape error means the YAML is not what we meant
            raise RenderError(f"{name}: rendered YAML does not parse back: {exc!r}") from None
        # Plain == first (cheap on 10 000 vhosts); equal then means equal after normalising.
        if got != expected and _normalise(got) != _normalise(expected):
            raise RenderError(_mismatch(name, expected, got))
    if doc.get("version_info") != file_version(text):
        raise RenderError(f"{name}: version_info does not parse back")
    return doc


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def _mismatch(name: str, expected: Any, got: Any) -> str:
    return (
        f"{name}: the rendered YAML means something else than the model ({_BUG})\n"
        f"  model:  {expected!r:.500}\n  parsed: {got!r:.500}"
    )
