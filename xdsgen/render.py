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
from xdsgen import verify_features as features
from xdsgen.conventions import BARE_KEYS, BARE_WORDS, CDS_FILE, LDS_FILE, file_version, versioned
from xdsgen.errors import RenderError
from xdsgen.model import Model


class _Safe(str):
    """A string that a filter made safe to print into YAML."""


def yaml_quote(value: object) -> _Safe:
    if not isinstance(value, str):
        raise RenderError(f"template bug: q filter got {type(value).__name__} {value!r}")
    from xdsgen.yamlsubset import quote

    try:
        return _Safe(quote(value))
    except ValueError as exc:  # a lone surrogate: the loader refuses those, so a bug
        raise RenderError(str(exc)) from None


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
    files = {
        CDS_FILE: _with_version(_template("cds.yaml.j2").render(model=model)),
        LDS_FILE: _with_version(_template("lds.yaml.j2").render(model=model)),
    }
    rds = _template("rds.yaml.j2")
    for rc in model.route_configs:
        files[rc.file_name] = _with_version(rds.render(rc=rc))
    sds = _template("sds.yaml.j2")
    for secret in model.secrets:
        files[secret.file_name] = _with_version(sds.render(secret=secret))
    rendered = Rendered(dict(sorted(files.items())))
    if check:
        verify(model, rendered)
    if model.patches:
        # The user's own Envoy config, merged last: verify checked what xdsgen decided.
        from xdsgen.patching import apply_patches

        rendered = Rendered(apply_patches(rendered.files, model.patches))
    return rendered


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


def _cluster_facts(model: Model) -> list[tuple[Any, ...]]:
    return [
        (
            c.name,
            c.discovery,
            c.connect_timeout,
            tuple((e.host, e.port) for e in c.endpoints),
            c.tls.sni if c.tls else None,
            c.tls.ca if c.tls else None,
            *features.cluster(c),
        )
        for c in model.clusters
    ]


def _parsed_cluster_facts(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    facts = []
    for c in doc["resources"]:
        tls = (c.get("transport_socket") or {}).get("typed_config", {})
        ca = tls.get("common_tls_context", {}).get("validation_context", {}).get("trusted_ca", {})
        endpoints = tuple(
            (
                e["endpoint"]["address"]["socket_address"]["address"],
                e["endpoint"]["address"]["socket_address"]["port_value"],
            )
            for group in c["load_assignment"]["endpoints"]
            if group.get("priority", 0) == 0
            for e in group["lb_endpoints"]
        )
        facts.append(
            (
                c["name"],
                c["type"],
                c["connect_timeout"],
                endpoints,
                tls.get("sni"),
                ca.get("filename"),
                *features.parsed_cluster(c),
            )
        )
    return facts


def _listener_facts(model: Model) -> list[tuple[Any, ...]]:
    facts = []
    for listener in model.listeners:
        chains = tuple(
            [(p.server_names, "tcp", p.cluster) for p in listener.passthrough]
            + [(h.server_names, "http", h.secret) for h in listener.http_chains]
        )
        facts.append(
            (
                listener.name,
                listener.protocol,
                listener.address,
                listener.port,
                listener.cluster,
                listener.route_config,
                chains,
                tuple(features.chain(c, c.http) for c in listener.filter_chains),
            )
        )
    return facts


def _parsed_listener_facts(doc: dict[str, Any], model: Model) -> list[tuple[Any, ...]]:
    facts = []
    for listener in doc["resources"]:
        sock = listener["address"]["socket_address"]
        cluster = route_config = None
        chains = []
        extras = []
        for lf in listener.get("listener_filters", []):
            if lf["name"] == "envoy.filters.udp_listener.udp_proxy":
                matcher = lf["typed_config"]["matcher"]
                if "on_no_match" in matcher:
                    action = matcher["on_no_match"]["action"]
                else:  # allow (issue 14): the route of the allowed sources
                    action = matcher["matcher_list"]["matchers"][0]["on_match"]["action"]
                cluster = action["typed_config"]["cluster"]
        for chain in listener.get("filter_chains", []):
            names = tuple((chain.get("filter_chain_match") or {}).get("server_names", ()))
            config = chain["filters"][0]["typed_config"]
            extras.append(features.parsed_chain(chain, config))
            log = config.get("access_log")
            if (log[0]["typed_config"]["path"] if log else None) != model.envoy.access_log:
                raise RenderError(f"listener {listener['name']}: access log differs from the model")
            if "rds" in config:
                route_config = config["rds"]["route_config_name"]
                if config["rds"]["config_source"]["path_config_source"]["path"] != model.route_path(
                    route_config
                ):
                    raise RenderError(
                        f"listener {listener['name']}: RDS path differs from the model"
                    )
                chains.append((names, "http", features.chain_secret(chain)))
            else:
                if not names:
                    cluster = config["cluster"]
                    continue
                chains.append((names, "tcp", config["cluster"]))
        facts.append(
            (
                listener["name"],
                sock["protocol"],
                sock["address"],
                sock["port_value"],
                cluster,
                route_config,
                tuple(chains),
                tuple(extras),
            )
        )
    return facts


def _route_facts(model: Model, name: str) -> Any:
    rc = next(r for r in model.route_configs if r.file_name == name)
    return (
        rc.name,
        [
            (
                vh.name,
                vh.domains,
                [
                    (
                        r.match,
                        r.value,
                        r.cluster,
                        r.prefix_rewrite,
                        r.timeout,
                        r.websocket,
                        r.https_redirect,
                        r.redirect_port,
                        *features.route(r),
                    )
                    for r in vh.routes
                ],
                *features.vhost(vh),
            )
            for vh in rc.virtual_hosts
        ],
        *features.route_config(rc.response_headers, rc.max_direct_response_body),
    )


def _parsed_route_facts(doc: dict[str, Any]) -> Any:
    (rc,) = doc["resources"]
    vhosts = []
    for vh in rc["virtual_hosts"]:
        routes = []
        for r in vh["routes"]:
            ((kind, value),) = r["match"].items()
            action = r.get("route", {})
            redirect = r.get("redirect", {})
            routes.append(
                (
                    kind,
                    value,
                    action.get("cluster"),
                    action.get("prefix_rewrite"),
                    action.get("timeout"),
                    bool(action.get("upgrade_configs")),
                    bool(redirect.get("https_redirect")),
                    redirect.get("port_redirect"),
                    *features.parsed_route(r),
                )
            )
        vhosts.append((vh["name"], tuple(vh["domains"]), routes, *features.parsed_vhost(vh)))
    return (rc["name"], vhosts, *features.parsed_route_config(rc))


_BUG = "an xdsgen bug, please report it; nothing was written"


def verify(model: Model, rendered: Rendered) -> None:
    """Parse every rendered file back and compare what it means with the model.

    Runs on every render, in production too: a difference is a bug in xdsgen (a template,
    a filter), reported as RenderError before anything is written."""
    try:
        _verify(model, rendered)
    except RenderError as exc:
        text = str(exc)
        raise RenderError(text if _BUG in text else f"{text} ({_BUG})") from None


def _verify(model: Model, rendered: Rendered) -> None:
    checks: list[tuple[str, Callable[[Any], Any], Any]] = [
        (CDS_FILE, _parsed_cluster_facts, _cluster_facts(model)),
        (LDS_FILE, lambda d: _parsed_listener_facts(d, model), _listener_facts(model)),
    ]
    for rc in model.route_configs:
        checks.append((rc.file_name, _parsed_route_facts, _route_facts(model, rc.file_name)))
    for s in model.secrets:
        checks.append(
            (
                s.file_name,
                lambda d: [
                    (
                        r["name"],
                        r["tls_certificate"]["certificate_chain"]["filename"],
                        r["tls_certificate"]["private_key"]["filename"],
                    )
                    for r in d["resources"]
                ],
                [(s.name, s.cert, s.key)],
            )
        )
    expected_names = {name for name, _, _ in checks}
    if expected_names != set(rendered.files):
        raise RenderError(f"rendered files {sorted(rendered.files)} != {sorted(expected_names)}")
    checks += _access_checks(model)
    checks.append(_watched_check(model))
    docs: dict[str, Any] = {}  # each file parsed once, however many checks read it
    for name, parse, expected in checks:
        text = rendered.files[name]
        try:
            doc = docs[name] if name in docs else parse_back(text)
            docs[name] = doc
            got = parse(doc)
        except RenderError:
            raise
        except Exception as exc:  # any shape error means the YAML is not what we meant
            raise RenderError(f"{name}: rendered YAML does not parse back: {exc!r}") from None
        # Plain == first (cheap on 10 000 vhosts); equal then means equal after normalising.
        if got != expected and _normalise(got) != _normalise(expected):
            raise RenderError(_mismatch(name, expected, got))
        if doc.get("version_info") != rendered.version(name):
            raise RenderError(f"{name}: version_info does not parse back")


def _access_checks(model: Model) -> list[tuple[str, Callable[[Any], Any], Any]]:
    """Who may reach what (issue 14): xdsgen/access_facts.py."""
    from xdsgen import access_facts as facts

    checks: list[tuple[str, Callable[[Any], Any], Any]] = [
        (CDS_FILE, facts.parsed_clusters, facts.expected_clusters(model)),
        (LDS_FILE, facts.parsed_listeners, facts.expected_listeners(model)),
    ]
    for rc in model.route_configs:
        checks.append(
            (rc.file_name, facts.parsed_routes, facts.expected_routes(model, rc.file_name))
        )
    return checks


def _watched_check(model: Model) -> tuple[str, Callable[[Any], Any], Any]:
    """Every path_config_source of the listeners watches the directory the model says
    (envoy.layout directory, export k8s) or none: one missing would miss every swap."""
    wanted = model.envoy.watched_directory

    def wrong(doc: Any) -> list[Any]:
        found: list[Any] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                source = node.get("path_config_source")
                if isinstance(source, dict):
                    watched = (source.get("watched_directory") or {}).get("path")
                    if watched != wanted:
                        found.append((source.get("path"), watched))
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(doc)
        return found

    return (LDS_FILE, wrong, [])


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def _mismatch(name: str, expected: Any, got: Any) -> str:
    return (
        f"{name}: the rendered YAML means something else than the model ({_BUG})\n"
        f"  model:  {expected!r:.500}\n  parsed: {got!r:.500}"
    )
