"""A directory updated the way kubelet updates a ConfigMap or Secret volume.

kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go, Write) never touches a file the
container sees. Each update, with the same system calls:
  1. compares the payload with the files of the `..data` directory: nothing new and nothing
     gone -> only step 4 (links that are missing are made again),
  2. writes the whole new payload into a fresh `..<timestamp>` directory (0755, files 0644),
  3. points a new symlink `..data_tmp` at it and renames it over `..data` (the one atomic step),
  4. creates `<name> -> ..data/<name>` symlinks for names that have none (after the rename,
     as current kubelets do),
  5. removes the links of the names the previous `..data` directory had and the payload
     has not, then the previous `..<timestamp>` directory.
So `cds.yaml` in the mount is a symlink that never moves: Envoy's default watch (a move of
the file itself) never fires; a watch on the directory (path_config_source's
watched_directory) sees `..data` moved in.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Union

DATA_DIR = "..data"


class KubeletVolume:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.updates = 0

    def _timestamp_dir(self) -> str:
        now = time.time_ns()
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(now // 10**9))
        return f"..{stamp}.{now % 10**9:09d}"

    def write(self, files: dict[str, Union[str, bytes]]) -> None:
        for name in files:
            if "/" in name or name.startswith(".."):
                raise ValueError(f"kubelet refuses the key {name!r}")
        data_link = self.directory / DATA_DIR
        old_dir = os.readlink(data_link) if data_link.is_symlink() else None
        gone: set[str] = set()
        if old_dir is not None:
            old_names = set(os.listdir(self.directory / old_dir))
            gone = old_names - set(files)
            if not gone and all(_same(self.directory / old_dir / n, c) for n, c in files.items()):
                old_dir = None  # kubelet: "no update required", links made again only
                files = {n: c for n, c in files.items() if not (self.directory / n).is_symlink()}
                for name in files:
                    os.symlink(f"{DATA_DIR}/{name}", self.directory / name)
                return
        new_dir = self._timestamp_dir()
        payload = self.directory / new_dir
        payload.mkdir(mode=0o755)
        for name, content in files.items():
            target = payload / name
            if isinstance(content, str):
                target.write_text(content)
            else:
                target.write_bytes(content)
            target.chmod(0o644)
        temp_link = self.directory / "..data_tmp"
        os.symlink(new_dir, temp_link)
        os.rename(temp_link, data_link)
        for name in files:
            visible = self.directory / name
            if not visible.is_symlink():
                os.symlink(f"{DATA_DIR}/{name}", visible)
        for name in sorted(gone):
            (self.directory / name).unlink(missing_ok=True)
        if old_dir is not None:
            shutil.rmtree(self.directory / old_dir)
        self.updates += 1


def _same(path: Path, content: Union[str, bytes]) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return data == (content.encode() if isinstance(content, str) else content)
