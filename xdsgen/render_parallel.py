"""Rendering a big config on two cores: two processes share the files, each renders and
verifies its own.

At 10 000 vhosts the templates take ~0.45 s and parsing every file back ~0.6 s, all in one
process while the machine's other core idles (home routers have 1-4 cores). Here the
process forks once the model is built; parent and child take the files one at a time from
a shared pipe of job numbers (the biggest first), so neither waits for the other's share.
Each process renders a file and verifies it exactly as `render.verify` does (parse it
back, compare with the model: the same code on the same model, which the child has by
fork). The child sends back each text with its parsed document (marshal: ~30 ms for a
4 MB route file against ~250 ms to parse it again), so the parent ends with every text
and every parsed file, as after a render in one process.

Nothing depends on the child: a file it did not answer for (it crashed, was killed, sent
something unreadable) is rendered and verified by the parent itself. A file the child
found wrong raises the child's RenderError. One core, a small config (forking costs more
than it saves below a few thousand routes) or no fork: one process renders, as before.
XDSGEN_RENDER_PROCESSES=1 forces that; =2 forces the pair (tests).
"""

from __future__ import annotations

import marshal
import os
import struct
from typing import TYPE_CHECKING, Any, Callable, Optional

from xdsgen.errors import RenderError

if TYPE_CHECKING:
    from xdsgen.model import Model

Job = tuple[str, Callable[[], str]]
# render.verify_file, as verify words its errors: (name, text) -> the parsed file.
Verify = Callable[[str, str], Any]

# Below this many bytes of output (estimated) one process is faster: the fork and the
# child's copy-on-write page faults cost ~20-40 ms at any size.
PAIR_FROM_BYTES = 1_500_000
_TOKEN = struct.Struct("=I")
_ENV = "XDSGEN_RENDER_PROCESSES"


def estimated_bytes(model: Model, name: str) -> int:
    """A file's rendered size, roughly (from the golden and synthetic configs): only the
    order of the jobs and the choice to fork use it."""
    for rc in model.route_configs:
        if rc.file_name == name:
            return sum(400 + 150 * len(vh.routes) for vh in rc.virtual_hosts)
    if name.startswith("cds"):
        return 400 * len(model.clusters)
    if name.startswith("lds"):
        return sum(800 + 800 * len(item.filter_chains) for item in model.listeners)
    return 300


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _wanted(sizes: list[int]) -> bool:
    forced = os.environ.get(_ENV, "")
    if forced in ("1", "2"):
        return forced == "2"
    return sum(sizes) >= PAIR_FROM_BYTES and _cores() >= 2


def render_in_pair(
    model: Model, jobs: list[Job], check: Optional[Verify]
) -> Optional[dict[str, str]]:
    """Every file rendered (and verified by `check`, if given) by two processes:
    name -> text; None when one process should render them (see the module doc)."""
    if not hasattr(os, "fork") or len(jobs) < 2 or len(jobs) * _TOKEN.size > 65536:
        return None
    sizes = [estimated_bytes(model, name) for name, _ in jobs]
    if not _wanted(sizes):
        return None
    order = sorted(range(len(jobs)), key=lambda i: -sizes[i])
    _preload()
    tokens_in, tokens_out = os.pipe()
    # A pipe holds 64 KB: every job number is in it before anyone reads.
    os.write(tokens_out, b"".join(_TOKEN.pack(i) for i in order))
    os.close(tokens_out)
    results_in, results_out = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(results_in)
        os.close(results_out)
        os.close(tokens_in)
        return None
    if pid == 0:  # the child: never returns
        os.close(results_in)
        _child(jobs, check, tokens_in, results_out)
    os.close(results_out)
    try:
        return _parent(jobs, check, tokens_in, results_in)
    finally:
        os.close(tokens_in)
        os.close(results_in)
        _reap(pid)


def _preload() -> None:
    """Import what the child uses before forking: an import lock held by another thread
    at the fork would never be released in the child."""
    import xdsgen.access_facts
    import xdsgen.parsed
    import xdsgen.verify_features
    import xdsgen.yamlsubset  # noqa: F401


def _claim(tokens: int) -> Optional[int]:
    data = os.read(tokens, _TOKEN.size)  # a pipe read is atomic: each job goes to one process
    return _TOKEN.unpack(data)[0] if len(data) == _TOKEN.size else None


def _render_one(job: Job, check: Optional[Verify]) -> tuple[str, Any]:
    name, make = job
    text = make()
    return text, (None if check is None else check(name, text))


def _child(jobs: list[Job], check: Optional[Verify], tokens: int, out: int) -> None:
    code = 0
    try:
        answers: list[tuple[str, str, bytes, str]] = []
        index = _claim(tokens)
        while index is not None:
            name = jobs[index][0]
            try:
                text, doc = _render_one(jobs[index], check)
            except RenderError as exc:
                answers.append((name, "", b"", str(exc) or "render error"))
                break
            answers.append((name, text, marshal.dumps(doc), ""))
            index = _claim(tokens)
        payload = marshal.dumps(answers)
        view = memoryview(payload)
        while view:
            view = view[os.write(out, view) :]
    except BaseException:  # the parent renders whatever is missing
        code = 1
    finally:
        os._exit(code)  # never the parent's cleanup, atexit or buffered output


def _parent(jobs: list[Job], check: Optional[Verify], tokens: int, results: int) -> dict[str, str]:
    from xdsgen.parsed import remember

    files: dict[str, str] = {}
    index = _claim(tokens)
    while index is not None:
        files[jobs[index][0]] = _render_one(jobs[index], check)[0]
        index = _claim(tokens)
    for name, text, doc, error in _answers(results):
        if error:
            raise RenderError(error)
        if name in files or not isinstance(text, str):
            continue
        if check is not None:
            remember(text, marshal.loads(doc))
        files[name] = text
    for job in jobs:  # whatever the child did not answer for
        if job[0] not in files:
            files[job[0]] = _render_one(job, check)[0]
    return files


def _answers(results: int) -> list[tuple[str, str, bytes, str]]:
    chunks = []
    while True:
        chunk = os.read(results, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    try:
        answers = marshal.loads(b"".join(chunks))
    except (EOFError, ValueError, TypeError):
        return []  # the child died before it answered: the parent renders everything
    if not isinstance(answers, list):
        return []
    return [a for a in answers if isinstance(a, tuple) and len(a) == 4]


def _reap(pid: int) -> None:
    import signal

    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # the parent stopped early (an error, ^C): the child's work is moot
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except OSError:
        pass
