"""The two installs every section measures, made from the packages of this environment:

  essentials  `pip install .`: click, PyYAML, Jinja2, jsonschema and what they need, and
              nothing else: what every OpenWrt router has (no rich)
  full        `pip install '.[full]'`: the same plus rich

Each is a virtualenv (`python -m venv --without-pip`, no system site-packages) whose
site-packages links exactly the distributions of the install's requirement closure (read
from xdsgen's metadata, markers evaluated for that extra). xdsgen itself is a copy of the
package in its installed layout (templates and schema inside), byte-compiled as pip and
opkg do at install time; a second copy without any .pyc is the "source only" variant (a
tree copied onto a router by hand). Commands run as cron runs them: a new process each
time, PYTHONDONTWRITEBYTECODE=1 (OpenWrt's Python writes no bytecode), a scratch template
cache, and the scratch directory as working directory.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import REPO, run_timed

INSTALLS = ("essentials", "full")
_EXTRAS = {"essentials": "", "full": "full"}


@dataclass
class Install:
    name: str
    python: str  # the virtualenv's interpreter
    env: dict[str, str]  # xdsgen byte-compiled
    env_src: dict[str, str]  # xdsgen as source only
    xdsgen: list[str]  # the console script, as pip writes it
    packages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.name


def closure(extra: str) -> list[str]:
    """The distributions `pip install .[extra]` brings (xdsgen's own requirements for that
    extra, then theirs without extras), by their metadata names."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = [(req, extra) for req in metadata.requires("xdsgen") or []]
    while todo:
        text, wanted = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": wanted}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[key] = dist.metadata["Name"]
        todo.extend((sub, "") for sub in dist.requires or [])
        for inner in req.extras:
            todo.extend((sub, inner) for sub in dist.requires or [])
    return sorted(seen.values(), key=str.lower)


def _console_script() -> tuple[str, str, str]:
    """The `xdsgen` entry point from xdsgen's metadata ("module:function"), as pip reads it."""
    (entry,) = [
        e
        for e in metadata.distribution("xdsgen").entry_points
        if e.group == "console_scripts" and e.name == "xdsgen"
    ]
    return entry.value.partition(":")


def _site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return venv / "lib" / version / "site-packages"


def _link_distribution(name: str, target: Path) -> None:
    dist = metadata.distribution(name)
    top = {str(f).split("/")[0] for f in dist.files or [] if not str(f).startswith("..")}
    base = Path(str(dist.locate_file("")))
    for entry in sorted(top):
        source = base / entry
        if entry in ("__pycache__", "") or not source.exists():
            continue
        link = target / entry
        if not link.exists():
            link.symlink_to(source)


def copy_package(root: Path, compile_: bool) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    target = root / "xdsgen"
    shutil.copytree(REPO / "xdsgen", target, ignore=ignore)
    # The installed (wheel) layout: templates and schema inside the package.
    shutil.copytree(REPO / "templates", target / "templates", ignore=ignore)
    shutil.copytree(REPO / "schemas", target / "schemas", ignore=ignore)
    if compile_:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(target)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def make_install(name: str, work: Path, pkg: Path, pkg_src: Path) -> Install:
    venv = work / f"venv-{name}"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    site = _site_packages(venv)
    packages = closure(_EXTRAS[name])
    for package in packages:
        _link_distribution(package, site)
    python = str(venv / "bin" / "python")
    script = venv / "bin" / "xdsgen"
    module, _, function = _console_script()
    script.write_text(
        f"#!{python}\nimport sys\nfrom {module} import {function}\nif __name__ == '__main__':\n"
        f"    sys.exit({function}())\n"
    )
    script.chmod(0o755)
    return Install(
        name,
        python,
        environment(work, pkg),
        environment(work, pkg_src),
        [python, str(script)],
        packages,
    )


def environment(work: Path, package_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XDSGEN_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=str(package_root),
        XDG_CACHE_HOME=str(work / "cache"),
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        XDSGEN_BENCH_CWD=str(work),
    )
    return env


def make_installs(work: Path) -> dict[str, Install]:
    pkg, pkg_src = work / "pkg", work / "pkg-src"
    copy_package(pkg, compile_=True)
    copy_package(pkg_src, compile_=False)
    installs = {name: make_install(name, work, pkg, pkg_src) for name in INSTALLS}
    for install in installs.values():
        check(install, pkg, pkg_src)
    return installs


def check(install: Install, pkg: Path, pkg_src: Path) -> None:
    """xdsgen comes from the copies, and rich is there exactly in the full install."""
    code = (
        "import importlib.util, xdsgen; "
        "print(xdsgen.__file__, bool(importlib.util.find_spec('rich')))"
    )
    for env, root in ((install.env, pkg), (install.env_src, pkg_src)):
        where, rich = run_timed([install.python, "-c", code], env).out.split()
        if not where.startswith(str(root) + os.sep):
            raise RuntimeError(f"{install}: the benchmark would import xdsgen from {where}")
        if (rich == "True") != (install.name == "full"):
            raise RuntimeError(f"{install}: rich importable: {rich}")
