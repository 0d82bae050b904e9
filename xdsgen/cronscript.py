"""`xdsgen cron-script`: the cron wrapper apply.sh, shipped inside the package.

apply.sh (POSIX sh, busybox ash on OpenWrt) runs `xdsgen apply`, sends its output to
syslog with a priority that follows the exit code, and exits with xdsgen's code: what a
router needs from cron, which has no mail there. A shell script rather than an
`apply --syslog` option: it needs no syslog module in OpenWrt's trimmed Python, and the
logging it does is busybox `logger`, the same path every other OpenWrt service uses.

Cron starts jobs with PATH=/usr/bin:/bin: an xdsgen in a virtualenv is not found there.
So the installed copy runs the xdsgen that installed it, by its interpreter's full path.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DEFAULT_PATH = "/usr/share/xdsgen/apply.sh"
INVENTORY = "/etc/xdsgen/inventory.yaml"
SCHEDULE = "*/15 * * * *"
_DEFAULT_LINE = "xdsgen=${XDSGEN:-xdsgen} # default: set by xdsgen cron-script\n"


def cron_line(script: str = DEFAULT_PATH) -> str:
    """The crontab line every example uses."""
    return f"{SCHEDULE} {script} {INVENTORY}"


def packaged_script() -> str:
    return (Path(__file__).resolve().parent / "data" / "apply.sh").read_text(encoding="utf-8")


def this_xdsgen() -> str:
    """How to run the xdsgen that runs now, without relying on PATH."""
    executable = sys.executable
    # apply.sh splits the command on spaces, and the value sits in double quotes.
    if executable and os.path.isabs(executable) and re.fullmatch(r"[\w@%+=:,./-]+", executable):
        return f"{executable} -m xdsgen"
    return "xdsgen"


def script_text() -> str:
    text = packaged_script()
    if _DEFAULT_LINE not in text:  # pragma: no cover - the packaged file is tested
        raise RuntimeError("apply.sh lost its default xdsgen line")
    return text.replace(_DEFAULT_LINE, f'xdsgen=${{XDSGEN:-"{this_xdsgen()}"}}\n')


def install(path: str) -> None:
    """Write the script to `path` (0755), creating its directory (0755) if needed."""
    from xdsgen.errors import IOProblem
    from xdsgen.files import write_atomic

    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise IOProblem(f"cannot write {path}: {directory} is not a directory")
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {directory}: {exc.strerror}") from None
    write_atomic(path, script_text(), mode=0o755)
    try:
        os.chmod(path, 0o755)  # also when the content was already there
    except OSError as exc:
        raise IOProblem(f"cannot make {path} executable: {exc.strerror}") from None
