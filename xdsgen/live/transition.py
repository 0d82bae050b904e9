"""Moving the config directory from one set of files to another, step by confirmed step,
and back to the last confirmed config when a step fails.

A step fails when Envoy refuses it, does not confirm it in time, or a file cannot be
written (disk full, read-only, permissions). Whatever failed, the restore goes to the last
config Envoy confirmed (not to whatever was on disk when the apply started, which may be
a refused config a killed apply left behind), in the same make-before-break order, and
the error says exactly what the directory holds afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Callable, NoReturn, Optional

from xdsgen.conventions import LAYOUT_DIRECTORY, LAYOUT_RENAME, is_config_file
from xdsgen.errors import EnvoyRefused, IOProblem, XdsgenError
from xdsgen.files import fsync_dir, replace_file
from xdsgen.live.certs import CertificateFailure, CertReload, signal_reload
from xdsgen.live.confirm import Confirmer, StepFailed
from xdsgen.live.plan import Previous, Step, plan_steps
from xdsgen.live.state import State
from xdsgen.live.swap import write_generation

Progress = Callable[[str], None]
_FAILURES = (StepFailed, IOProblem, CertificateFailure)


def read_files(config_dir: str, names: Optional[set[str]] = None) -> dict[str, str]:
    """The xDS files in the directory, only those named in `names` when given (files of
    the same shape that xdsgen did not write are never read, planned or removed)."""
    files: dict[str, str] = {}
    try:
        listing = sorted(os.listdir(config_dir))
    except FileNotFoundError:
        return files
    except OSError as exc:
        raise IOProblem(f"cannot read {config_dir}: {exc.strerror}") from None
    for name in listing:
        if not is_config_file(name) or (names is not None and name not in names):
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


def run_steps(
    config_dir: str,
    steps: list[Step],
    files: dict[str, str],
    confirmer: Confirmer,
    progress: Progress,
) -> dict[str, str]:
    """Write, remove or signal each step, then confirm it; `files` tracks the directory."""
    files = dict(files)
    for step in steps:
        base = confirmer.snapshot()
        if step.generation is not None:  # directory mode: the whole set in one swap
            generation = dict(step.generation)
            write_generation(config_dir, generation, files)
            files = generation
        for name, text in step.writes if step.generation is None else ():
            replace_file(os.path.join(config_dir, name), text)
            files[name] = text
        for name in step.removes if step.generation is None else ():
            _remove(os.path.join(config_dir, name))
            files.pop(name, None)
        if step.removes and step.generation is None:
            with contextlib.suppress(OSError):
                fsync_dir(config_dir)
        for reload in step.reloads:
            signal_reload(reload)
        if step.writes or step.reloads:
            confirmer.confirm(step, base, files)
        progress(f"  {step.what}: {'confirmed' if confirmer.confirming else 'written'}")
    return files


def describe_directory(config_dir: str, names: set[str], wanted: Mapping[str, str]) -> str:
    """Which files differ from `wanted` (what a failed restore leaves to the person)."""
    try:
        now = read_files(config_dir, names)
    except IOProblem as exc:
        return f"the directory cannot be read: {exc}"
    differ = sorted(n for n in set(now) | set(wanted) if now.get(n) != wanted.get(n))
    if not differ:
        return "the files on disk are the last confirmed config"
    return "these files differ from the last confirmed config: " + ", ".join(differ)


def transition(
    state: State,
    old: dict[str, str],
    new: dict[str, str],
    confirmer: Confirmer,
    progress: Progress,
    restore_to: Mapping[str, str],
    managed: set[str],
    reloads: tuple[CertReload, ...] = (),
    stale: tuple[str, ...] = (),
    previous_clusters: Previous = None,
    steps: Optional[list[Step]] = None,
    layout: str = LAYOUT_RENAME,
) -> None:
    """Go from `old` (on disk now) to `new`; on failure go to `restore_to` (the last
    confirmed config) the same way and raise. The state's journal is dropped once the
    restore is through, and kept when it is not (the next apply then knows). `steps`: the
    steps from `old` to `new` when the caller planned them already."""
    if steps is None:
        steps = steps_for(layout, old, new, reloads, stale, previous_clusters)
    try:
        run_steps(state.config_dir, steps, old, confirmer, progress)
    except _FAILURES as failure:
        _restore(
            state, failure, confirmer, progress, restore_to, managed, previous_clusters, layout
        )


def steps_for(
    layout: str,
    old: dict[str, str],
    new: Mapping[str, str],
    reloads: tuple[CertReload, ...] = (),
    stale: tuple[str, ...] = (),
    previous_clusters: Previous = None,
) -> list[Step]:
    """The ordered steps of envoy.layout: renames one file kind at a time, or swaps of
    whole generations (live/generations.py)."""
    if layout == LAYOUT_DIRECTORY:
        from xdsgen.live.generations import plan_generations

        return plan_generations(old, new, reloads, stale, previous_clusters)
    return plan_steps(old, new, reloads, stale, previous_clusters)


def _restore(
    state: State,
    failure: Exception,
    confirmer: Confirmer,
    progress: Progress,
    restore_to: Mapping[str, str],
    managed: set[str],
    previous_clusters: Previous,
    layout: str,
) -> NoReturn:
    config_dir = state.config_dir
    progress(f"  restoring the last confirmed config: {failure}")
    names = managed | set(restore_to)
    try:
        now = read_files(config_dir, names)
        steps = steps_for(layout, now, restore_to, previous_clusters=previous_clusters)
        run_steps(config_dir, steps, now, confirmer, progress)
    except _FAILURES as again:
        where = describe_directory(config_dir, names, restore_to)
        error: type[XdsgenError] = IOProblem if isinstance(again, IOProblem) else EnvoyRefused
        raise error(
            f"{failure}\nrestoring the last confirmed config failed too: {again}\n{where}"
        ) from None
    with contextlib.suppress(IOProblem):
        state.abandon()
    if isinstance(failure, StepFailed):
        what = "refused" if failure.refused else "did not confirm"
        lead = f"Envoy {what} the new config"
        error = EnvoyRefused
    else:
        lead = "a file could not be written"
        error = IOProblem
    if confirmer.confirming:
        raise error(
            f"{lead}; the last confirmed config is restored and Envoy confirmed it.\n{failure}"
        ) from None
    raise error(f"{lead}; the last confirmed config is restored.\n{failure}") from None
