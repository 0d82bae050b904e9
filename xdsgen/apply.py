"""`xdsgen apply`: change a live Envoy atomically, in make-before-break order, confirmed
through its admin interface, and put the previous files back when Envoy refuses.

The sequence (every failure before step 4 leaves the config directory untouched):
  1. validate and render in memory (exit 1 on any problem)
  2. take the directory's lock (exit 4), sweep temp files a killed run left
  3. plan against the files on disk; nothing to do -> "unchanged", no file touched
  4. optionally `envoy --mode validate` on the inlined config (exit 3, nothing written)
  5. the steps of plan.plan_steps, each written by rename and confirmed (version_text,
     nothing warming, no update_rejected/update_failure) before the next
  6. on refusal or timeout: the same ordered transition back to the files of step 3, exit 3
  7. remember what Envoy accepted in DIR/.xdsgen/state.json (for `xdsgen rollback`)

Certificates renewed in place (acme.sh copies over the old files; certbot swaps symlinks)
are not noticed by Envoy: it re-reads a secret's files only when something is *moved*
into their directory. apply keeps a fingerprint of every certificate and key it handed
to Envoy; when one changed, it moves a marker file into the certificate's directory and
waits until Envoy serves the new certificate's serial number (admin /certs).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import posixpath
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from xdsgen.admin import Admin, AdminUnreachable, counter, error_details
from xdsgen.errors import EXIT_USAGE, EnvoyRefused, IOProblem, XdsgenError
from xdsgen.files import (
    TEMP_PREFIX,
    fsync_dir,
    replace_file,
    sweep_temp_files,
    write_atomic,
)
from xdsgen.lock import ensure_state_dir, locked, state_dir
from xdsgen.model import CDS_FILE, LDS_FILE, Model
from xdsgen.plan import (
    CertReload,
    Plan,
    Step,
    compute_plan,
    file_version,
    is_config_file,
    plan_steps,
    resources_of,
)

STATE_FILE = "state.json"
STATE_FORMAT = 1
HISTORY = 5  # accepted configs kept in state.json
RELOAD_MARKER = ".xdsgen-reload"
POLL_INTERVAL = 0.05
DEFAULT_TIMEOUT = 10.0
DEFAULT_SETTLE = 1.0
DEFAULT_LOCK_TIMEOUT = 60.0


@dataclass
class Options:
    config_dir: Optional[str] = None  # default: the inventory's envoy.config_dir
    admin: Optional[str] = None  # HOST:PORT; default: the inventory's envoy.admin
    timeout: float = DEFAULT_TIMEOUT
    settle: float = DEFAULT_SETTLE
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    envoy_check: Optional[str] = None  # None: when an Envoy binary is found; "": off; else a path
    dry_run: bool = False
    diff: bool = False


@dataclass
class Result:
    plan: Plan
    applied: bool = False
    confirmed: bool = False
    admin: str = ""
    warnings: list[Any] = field(default_factory=list)  # the inventory's Problems
    model: Any = None  # the Model applied (None for rollback)

    def line(self) -> str:
        if self.plan.empty:
            return "unchanged"
        how = (
            f"confirmed by Envoy at {self.admin}" if self.confirmed else "NOT confirmed (no admin)"
        )
        return f"applied: {self.plan.totals()}; {how}"


class UsageProblem(XdsgenError):
    exit_code = EXIT_USAGE


class StepFailed(Exception):
    """Envoy refused a step (refused=True) or did not confirm it in time."""

    def __init__(self, message: str, refused: bool):
        super().__init__(message)
        self.refused = refused


# --------------------------------------------------------------------------- files on disk


def read_config_files(config_dir: str) -> dict[str, str]:
    """The xDS files xdsgen manages in the directory (cds, lds, rds_*, sds_*)."""
    files: dict[str, str] = {}
    try:
        names = sorted(os.listdir(config_dir))
    except FileNotFoundError:
        return files
    except OSError as exc:
        raise IOProblem(f"cannot read {config_dir}: {exc.strerror}") from None
    for name in names:
        if not is_config_file(name):
            continue
        path = os.path.join(config_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                files[name] = handle.read()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise IOProblem(f"cannot read {path}: {getattr(exc, 'strerror', exc)}") from None
    return files


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise IOProblem(f"cannot remove {path}: {exc.strerror}") from None


# --------------------------------------------------------------------------- certificates


def fingerprint(cert: str, key: str) -> Optional[str]:
    """A digest of the certificate and key contents (following symlinks), None if unreadable."""
    digest = hashlib.sha256()
    try:
        for path in (cert, key):
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    except OSError:
        return None
    return digest.hexdigest()[:32]


def certificate_serial(path: str) -> Optional[str]:
    """The serial number (lower-case hex) of the first certificate in a PEM file.

    A few lines of DER reading instead of the cryptography package, which OpenWrt lacks."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read()
        begin = text.index("-----BEGIN CERTIFICATE-----") + len("-----BEGIN CERTIFICATE-----")
        end = text.index("-----END CERTIFICATE-----", begin)
        der = base64.b64decode("".join(text[begin:end].split()))

        def header(pos: int) -> tuple[int, int, int]:
            tag, length = der[pos], der[pos + 1]
            pos += 2
            if length & 0x80:
                count = length & 0x7F
                length = int.from_bytes(der[pos : pos + count], "big")
                pos += count
            return tag, pos, length

        tag, pos, _ = header(0)  # Certificate
        tag2, pos, _ = header(pos)  # TBSCertificate
        tag3, inner, length = header(pos)
        if tag3 == 0xA0:  # [0] version
            inner += length
            tag3, inner, length = header(inner)
        if (tag, tag2, tag3) != (0x30, 0x30, 0x02):
            return None
        return der[inner : inner + length].hex().lstrip("0") or "0"
    except (OSError, ValueError, IndexError):
        return None


def certificate_reloads(model: Model, state: dict[str, Any]) -> tuple[CertReload, ...]:
    known = (state.get("accepted") or [{}])[0].get("certs", {})
    reloads = []
    for secret in model.secrets:
        current = fingerprint(secret.cert, secret.key)
        if current is None or known.get(secret.name) == current:
            continue
        reason = (
            "certificate files changed"
            if secret.name in known
            else "certificate files not yet confirmed"
        )
        reloads.append(CertReload(secret.name, secret.cert, secret.key, current, reason))
    return tuple(reloads)


def already_served(reloads: tuple[CertReload, ...], admin: Optional[Admin]) -> set[CertReload]:
    """Renewals Envoy picked up by itself (a file moved into the directory): nothing to do
    but remember them. Saves the marker file, and write access to the directory, when
    xdsgen first meets a certificate Envoy already serves."""
    if not reloads or admin is None:
        return set()
    try:
        serving = admin.certificate_serials()
    except AdminUnreachable:
        return set()
    return {r for r in reloads if certificate_serial(r.cert) in serving}


def signal_reload(reload: CertReload) -> None:
    """Make Envoy re-read a secret's files: it watches their directory for files moved in."""
    directory = os.path.dirname(os.path.abspath(reload.cert))
    try:
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        os.close(fd)
        os.replace(temp, os.path.join(directory, RELOAD_MARKER))
        os.unlink(os.path.join(directory, RELOAD_MARKER))
    except OSError as exc:
        raise StepFailed(
            f"cannot ask Envoy to re-read certificate {reload.secret!r}: moving a marker file "
            f"into {directory} failed ({exc.strerror}); xdsgen needs write access there",
            refused=False,
        ) from None


# --------------------------------------------------------------------------- state


def state_path(config_dir: str) -> str:
    return os.path.join(state_dir(config_dir), STATE_FILE)


def load_state(config_dir: str) -> dict[str, Any]:
    try:
        with open(state_path(config_dir), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return {"format": STATE_FORMAT, "accepted": []}
    if not isinstance(state, dict) or not isinstance(state.get("accepted"), list):
        return {"format": STATE_FORMAT, "accepted": []}
    return state


def save_state(
    config_dir: str,
    state: dict[str, Any],
    files: dict[str, str],
    certs: dict[str, str],
    confirmed: bool,
    admin: str,
    source: str,
) -> None:
    entry = {
        "files": dict(sorted(files.items())),
        "certs": dict(sorted(certs.items())),
        "confirmed": confirmed,
        "admin": admin,
        "source": source,
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    history = [e for e in state.get("accepted", []) if isinstance(e, dict)]
    if history and history[0].get("files") == entry["files"]:
        history = history[1:]  # the same config again (e.g. a certificate renewal): no new entry
    state = {"format": STATE_FORMAT, "accepted": [entry, *history][:HISTORY]}
    ensure_state_dir(config_dir)
    write_atomic(state_path(config_dir), json.dumps(state, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- confirmation


def subscriptions(lds_text: Optional[str]) -> dict[str, str]:
    """rds_/sds_ file name -> the stat prefix of Envoy's subscription to it, per this LDS."""
    found: dict[str, str] = {}
    for listener in resources_of(lds_text) or []:
        for chain in listener.get("filter_chains") or []:
            for network_filter in chain.get("filters") or []:
                config = network_filter.get("typed_config") or {}
                rds = config.get("rds")
                if isinstance(rds, dict):
                    path = ((rds.get("config_source") or {}).get("path_config_source") or {}).get(
                        "path"
                    )
                    if path:
                        prefix = config.get("stat_prefix", "")
                        found[posixpath.basename(path)] = (
                            f"http.{prefix}.rds.{rds.get('route_config_name')}"
                        )
            tls = (chain.get("transport_socket") or {}).get("typed_config") or {}
            for sds in (tls.get("common_tls_context") or {}).get(
                "tls_certificate_sds_secret_configs"
            ) or []:
                path = ((sds.get("sds_config") or {}).get("path_config_source") or {}).get("path")
                if path:
                    found[posixpath.basename(path)] = f"sds.{sds.get('name')}"
    return found


@dataclass
class Expect:
    prefix: str  # a subscription's stat prefix: cluster_manager.cds, http.X.rds.X, sds.X
    version: str
    fresh: bool  # this step wrote the file: Envoy must count a new attempt
    warming: Optional[str] = None  # a gauge that must be 0


class Confirmer:
    """Waits until Envoy reports each step, or settles blindly without an admin interface."""

    def __init__(self, admin: Optional[Admin], timeout: float, settle: float):
        self.admin = admin
        self.timeout = timeout
        self.settle = settle

    @property
    def confirming(self) -> bool:
        return self.admin is not None

    def snapshot(self) -> dict[str, str]:
        if self.admin is None:
            return {}
        try:
            return self.admin.stats()
        except AdminUnreachable as exc:
            raise StepFailed(str(exc), refused=False) from None

    def expectations(self, step: Step, files: dict[str, str]) -> list[Expect]:
        expects = []
        subscribed = subscriptions(step.lds_before)
        for name, text in step.writes:
            version = file_version(text) or ""
            if name == CDS_FILE:
                expects.append(
                    Expect("cluster_manager.cds", version, True, "cluster_manager.warming_clusters")
                )
            elif name == LDS_FILE:
                expects.append(
                    Expect(
                        "listener_manager.lds",
                        version,
                        True,
                        "listener_manager.total_listeners_warming",
                    )
                )
            elif name in subscribed:
                expects.append(Expect(subscribed[name], version, True))
        if step.final:
            written = {name for name, _ in step.writes}
            for name, prefix in subscriptions(files.get(LDS_FILE)).items():
                if name not in written and name in files:
                    expects.append(Expect(prefix, file_version(files[name]) or "", False))
        return expects

    def confirm(self, step: Step, base: dict[str, str], files: dict[str, str]) -> None:
        if self.admin is None:
            time.sleep(self.settle)
            return
        expects = self.expectations(step, files)
        serials = {r.secret: certificate_serial(r.cert) for r in step.reloads}
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                stats = self.admin.stats()
                served = self.admin.certificate_serials() if step.reloads else set()
            except AdminUnreachable as exc:
                raise StepFailed(f"{step.what}: {exc}", refused=False) from None
            refused = self._refusals(expects, step, base, stats)
            if refused:
                raise StepFailed(
                    f"{step.what}: Envoy refused the update ({refused})" + self._reasons(step),
                    refused=True,
                )
            waiting = self._waiting(expects, base, stats)
            waiting += [
                f"certificate {secret!r} (serial {serial})"
                for secret, serial in serials.items()
                if serial is not None and serial not in served
            ]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                unread = [
                    e.prefix
                    for e in expects
                    if e.fresh
                    and counter(stats, f"{e.prefix}.update_attempt")
                    <= counter(base, f"{e.prefix}.update_attempt")
                ]
                hint = (
                    f" (Envoy never read the new file for {', '.join(unread)}: does its "
                    "bootstrap read this config directory?)"
                    if unread
                    else ""
                )
                raise StepFailed(
                    f"{step.what}: Envoy did not confirm within {self.timeout:g}s; still waiting "
                    f"for {', '.join(waiting)}{hint}",
                    refused=False,
                )
            time.sleep(POLL_INTERVAL)

    @staticmethod
    def _refusals(
        expects: list[Expect], step: Step, base: dict[str, str], stats: dict[str, str]
    ) -> str:
        found = []
        for expect in expects:
            for kind in ("update_rejected", "update_failure"):
                name = f"{expect.prefix}.{kind}"
                if counter(stats, name) > counter(base, name):
                    found.append(f"{name} went up")
        for reload in step.reloads:
            name = f"sds.{reload.secret}.key_rotation_failed"
            if counter(stats, name) > counter(base, name):
                found.append(
                    f"{name} went up: {reload.cert} and {reload.key} are not a usable pair"
                )
        return "; ".join(found)

    @staticmethod
    def _waiting(expects: list[Expect], base: dict[str, str], stats: dict[str, str]) -> list[str]:
        waiting = []
        for expect in expects:
            version = stats.get(f"{expect.prefix}.version_text")
            attempts = f"{expect.prefix}.update_attempt"
            if version != expect.version or (
                expect.fresh and counter(stats, attempts) <= counter(base, attempts)
            ):
                waiting.append(
                    f"{expect.prefix} version {expect.version} (Envoy has {version or 'none'})"
                )
            elif expect.warming and counter(stats, expect.warming) > 0:
                waiting.append(f"{expect.warming} = {stats.get(expect.warming)}")
        return waiting

    def _reasons(self, step: Step) -> str:
        assert self.admin is not None
        names: set[str] = set()
        for _, text in step.writes:
            names.update(str(r.get("name")) for r in resources_of(text) or [])
        names.update(r.secret for r in step.reloads)
        try:
            details = error_details(self.admin.config_dump(), names)
        except AdminUnreachable:
            details = []
        if not details:
            return " (Envoy's log has its reason)"
        return "".join(f"\n  Envoy: {d}" for d in details)


def run_steps(
    config_dir: str,
    steps: list[Step],
    files: dict[str, str],
    confirmer: Confirmer,
    progress: Callable[[str], None],
) -> dict[str, str]:
    """Write, remove or signal each step, then confirm it; `files` tracks the directory."""
    files = dict(files)
    for step in steps:
        base = confirmer.snapshot()
        for name, text in step.writes:
            replace_file(os.path.join(config_dir, name), text)
            files[name] = text
        for name in step.removes:
            _remove(os.path.join(config_dir, name))
            files.pop(name, None)
        if step.removes:
            fsync_dir(config_dir)
        for reload in step.reloads:
            signal_reload(reload)
        if step.writes or step.reloads:
            confirmer.confirm(step, base, files)
        progress(f"  {step.what}: {'confirmed' if confirmer.confirming else 'written'}")
    return files


def transition(
    config_dir: str,
    old: dict[str, str],
    new: dict[str, str],
    reloads: tuple[CertReload, ...],
    confirmer: Confirmer,
    progress: Callable[[str], None],
    stale: tuple[str, ...] = (),
) -> None:
    """Go from `old` (on disk now) to `new`; on failure restore `old` the same way and raise."""
    steps = plan_steps(old, new, reloads, stale)
    try:
        run_steps(config_dir, steps, old, confirmer, progress)
    except StepFailed as failure:
        now = read_config_files(config_dir)
        progress(f"  restoring the previous files: {failure}")
        try:
            run_steps(config_dir, plan_steps(now, old), now, confirmer, progress)
        except StepFailed as again:
            raise EnvoyRefused(
                f"{failure}\nrestoring the previous files was not confirmed either: {again}"
            ) from None
        what = "refused" if failure.refused else "did not confirm"
        raise EnvoyRefused(
            f"Envoy {what} the new config; the previous files are restored and Envoy confirmed "
            f"them.\n{failure}"
            if confirmer.confirming
            else f"{failure}; the previous files are restored"
        ) from None


# --------------------------------------------------------------------------- apply


def resolve_admin(text: Optional[str], model: Optional[Model]) -> Optional[Admin]:
    if text:
        from xdsgen.model import is_ip, parse_endpoint

        endpoint = parse_endpoint(text)
        if isinstance(endpoint, str) or not is_ip(endpoint.host):
            raise IOProblem(
                f"--admin {text!r}: write HOST:PORT with an IP address, e.g. 127.0.0.1:15001"
            )
        return Admin(endpoint.host, endpoint.port)
    if model is not None:
        return Admin(model.envoy.admin_host, model.envoy.admin_port)
    return None


def _envoy_check(
    model: Model, rendered: Any, choice: Optional[str], progress: Callable[[str], None]
) -> None:
    if choice == "":
        return
    from xdsgen.envoycheck import check_with_envoy, find_envoy

    path = find_envoy() if choice in (None, "auto") else choice
    if path is None:
        if choice == "auto":
            raise IOProblem(
                "--envoy-check: no Envoy binary found (pass its path, or --no-envoy-check)"
            )
        progress("  envoy --mode validate: skipped (no Envoy binary found)")
        return
    check_with_envoy(model, rendered, path)
    progress(f"  envoy --mode validate ({path}): accepted")


def build(inventory: str, config_dir: Optional[str]) -> tuple[Model, Any]:
    from xdsgen.pipeline import load_model, render

    model = load_model(inventory, check_files=True, config_dir=config_dir)
    return model, render(model)


def envoy_stats(admin: Optional[Admin]) -> Optional[dict[str, str]]:
    """Envoy's stats, or None when its admin cannot be reached."""
    if admin is None:
        return None
    try:
        return admin.stats()
    except AdminUnreachable:
        return None


def stale_files(files: dict[str, str], stats: Optional[dict[str, str]]) -> dict[str, str]:
    """Files on disk whose version Envoy does not run (edited in place, or once refused):
    file name -> the version Envoy reports instead."""
    if stats is None:
        return {}
    prefixes = {CDS_FILE: "cluster_manager.cds", LDS_FILE: "listener_manager.lds"}
    prefixes.update(subscriptions(files.get(LDS_FILE)))
    stale = {}
    for name, prefix in prefixes.items():
        key = f"{prefix}.version_text"
        if name not in files or (key not in stats and name not in (CDS_FILE, LDS_FILE)):
            continue
        if stats.get(key, "") != file_version(files[name]):
            stale[name] = stats.get(key, "")
    return stale


def apply(
    inventory: str,
    options: Options,
    progress: Callable[[str], None] = lambda _: None,
    warn: Callable[[str], None] = lambda _: None,
    show_plan: Callable[[Plan], None] = lambda _: None,
) -> Result:
    """Validate, plan and (unless dry_run) apply; raise an XdsgenError on failure."""
    model, rendered = build(inventory, options.config_dir)
    config_dir = model.envoy.config_dir
    admin = resolve_admin(options.admin, model)
    address = admin.address if admin else ""
    if options.dry_run:
        state = load_state(config_dir)
        old = read_config_files(config_dir)
        plan = compute_plan(
            old,
            rendered.files,
            certificate_reloads(model, state),
            stale_files(old, envoy_stats(admin)),
        )
        return Result(plan, admin=address, warnings=list(model.warnings), model=model)
    try:
        os.makedirs(config_dir, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {config_dir}: {exc.strerror}") from None
    with locked(config_dir, options.lock_timeout):
        for directory in (config_dir, state_dir(config_dir)):
            for name in sweep_temp_files(directory):
                progress(f"  removed {name}, left by an interrupted run")
        state = load_state(config_dir)
        old = read_config_files(config_dir)
        stats = envoy_stats(admin)
        reloads = certificate_reloads(model, state)
        served = already_served(reloads, admin if stats is not None else None)
        reloads = tuple(r for r in reloads if r not in served)
        plan = compute_plan(old, rendered.files, reloads, stale_files(old, stats))
        certs = {s.name: fingerprint(s.cert, s.key) or "" for s in model.secrets}
        result = Result(plan, admin=address, warnings=list(model.warnings), model=model)
        if plan.empty:
            if not state.get("accepted") or served:
                save_state(
                    config_dir, state, rendered.files, certs, stats is not None, address, inventory
                )
            return result
        show_plan(plan)
        _envoy_check(model, rendered, options.envoy_check, progress)
        if admin is not None and stats is None:
            warn(
                f"warning: Envoy's admin at {address} is unreachable: applying without "
                f"confirmation ({options.settle:g}s between steps); nothing was confirmed"
            )
            admin = None
        confirmer = Confirmer(admin, options.timeout, options.settle)
        transition(
            config_dir, old, rendered.files, plan.cert_reloads, confirmer, progress, plan.stale
        )
        result.applied = True
        result.confirmed = confirmer.confirming
        save_state(config_dir, state, rendered.files, certs, result.confirmed, address, inventory)
        return result


# --------------------------------------------------------------------------- rollback


def rollback(
    config_dir: str,
    options: Options,
    progress: Callable[[str], None] = lambda _: None,
    warn: Callable[[str], None] = lambda _: None,
    show_plan: Callable[[Plan], None] = lambda _: None,
) -> Result:
    """Return to the last config Envoy accepted; if the files on disk are that config
    already, to the one before it (so two rollbacks in a row undo each other)."""
    config_dir = os.path.abspath(config_dir)
    if not os.path.isdir(state_dir(config_dir)):
        raise IOProblem(f"{config_dir} has no apply history ({state_dir(config_dir)} is missing)")
    with locked(config_dir, options.lock_timeout):
        for directory in (config_dir, state_dir(config_dir)):
            sweep_temp_files(directory)
        state = load_state(config_dir)
        history = state.get("accepted", [])
        now = read_config_files(config_dir)
        if not history:
            raise IOProblem(f"{state_path(config_dir)} holds no accepted config to return to")
        target = history[0]
        if target.get("files") == now:
            if len(history) < 2:
                raise IOProblem(
                    "only one accepted config is known: there is nothing to roll back to"
                )
            target = history[1]
        files = {n: t for n, t in target["files"].items() if is_config_file(n)}
        plan = compute_plan(now, files)
        admin = resolve_admin(options.admin or target.get("admin"), None)
        result = Result(plan, admin=admin.address if admin else "")
        if options.dry_run or plan.empty:
            return result
        show_plan(plan)
        if envoy_stats(admin) is None and admin is not None:
            warn(f"warning: Envoy's admin at {admin.address} is unreachable: nothing was confirmed")
            admin = None
        confirmer = Confirmer(admin, options.timeout, options.settle)
        transition(config_dir, now, files, (), confirmer, progress)
        result.applied = True
        result.confirmed = confirmer.confirming
        save_state(
            config_dir,
            state,
            files,
            target.get("certs", {}),
            result.confirmed,
            result.admin,
            f"rollback to {target.get('time', '?')}",
        )
        return result


# --------------------------------------------------------------------------- the CLI's calls


def run_apply(
    inventory: str, options: Options, console: Any, watch: bool = False, debounce: float = 0.5
) -> int:
    """`xdsgen apply`: returns the exit code; errors propagate as XdsgenError."""
    from xdsgen.errors import EXIT_CHANGES, EXIT_OK

    if watch:
        if options.dry_run:
            raise UsageProblem("--watch applies every change; it does not go with --dry-run")
        from xdsgen.watch import watch_and_apply

        return watch_and_apply(inventory, options, console, debounce)
    # Cron: no TTY means silence on success unless --verbose; errors always reach stderr.
    talk = console.interactive or console.verbose
    if options.dry_run:
        result = apply(inventory, options)
        if result.warnings:
            console.problems(result.warnings)
        console.plan(result.plan.changes, force=True)
        if options.diff and not result.plan.empty:
            console.out.write(result.plan.diff())
            console.out.flush()
        return EXIT_CHANGES if not result.plan.empty else EXIT_OK

    def show_plan(plan: Plan) -> None:
        if talk:
            console.plan(plan.changes)
            if options.diff:
                console.out.write(plan.diff())
                console.out.flush()

    result = apply(
        inventory,
        options,
        progress=console.detail,
        warn=console.warn,
        show_plan=show_plan,
    )
    if result.warnings and (talk or not result.plan.empty):
        console.problems(result.warnings)
    if talk:
        console.success(result.line())
    return EXIT_OK


def run_rollback(
    inventory: Optional[str], config_dir: Optional[str], options: Options, console: Any
) -> int:
    from xdsgen.errors import EXIT_CHANGES, EXIT_OK

    if config_dir is None:
        if inventory is None:
            raise IOProblem("rollback needs INVENTORY or --config-dir")
        from xdsgen.pipeline import load_model

        model = load_model(inventory, config_dir=None)
        config_dir = model.envoy.config_dir
        if options.admin is None:
            options.admin = f"{model.envoy.admin_host}:{model.envoy.admin_port}"
            if ":" in model.envoy.admin_host:
                options.admin = f"[{model.envoy.admin_host}]:{model.envoy.admin_port}"
    talk = console.interactive or console.verbose

    def show_plan(plan: Plan) -> None:
        if talk:
            console.plan(plan.changes)

    result = rollback(
        config_dir, options, progress=console.detail, warn=console.warn, show_plan=show_plan
    )
    if options.dry_run:
        console.plan(result.plan.changes, force=True)
        return EXIT_CHANGES if not result.plan.empty else EXIT_OK
    if talk:
        console.success(
            "rolled back: " + result.line().partition(": ")[2] if result.applied else "unchanged"
        )
    return EXIT_OK


__all__ = [
    "Options",
    "Result",
    "apply",
    "certificate_serial",
    "fingerprint",
    "load_state",
    "read_config_files",
    "rollback",
    "subscriptions",
]
