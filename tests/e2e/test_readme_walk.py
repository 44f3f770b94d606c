"""The README's first steps, walked as written (issue 15.15): its code blocks are read from
README.md and run through bash against a real server, in a fresh HOME, with only the token,
the address and SMARTLOCK_ID filled in. `bash scripts/serve` itself is what `live_server`
stands in for (tests/e2e/test_scripts.py runs the script)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks() -> list[tuple[str, str]]:
    """The README's fenced code blocks: (language, text)."""
    return re.findall(r"^```(\w*)\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def block_with(text: str) -> str:
    (found,) = [body for _language, body in blocks() if text in body]
    return found


def test_the_readme_walk(live_server: LiveServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYHOUSE_", "NUKI_")) and k != "COLUMNS"
    }
    env.update(
        HOME=str(home),
        KEYHOUSE_CONFIG=str(home / ".config" / "keyhouse" / "config.toml"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        NO_COLOR="1",
    )
    locks = httpx.get(f"{live_server.url}/smartlock", headers=live_server.headers).json()
    front = next(lock["smartlockId"] for lock in locks if lock["name"] == "Front Door")

    def fill(text: str) -> str:
        return (
            text.replace("kh_…", live_server.token)
            .replace("http://127.0.0.1:8080", live_server.url)
            .replace("SMARTLOCK_ID", str(front))
        )

    def bash(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )

    # The seed's workflow with curl.
    curl = fill(block_with("TOKEN=kh_…"))
    done = bash("set -e\n" + curl)
    assert done.returncode == 0, done.stderr
    assert '"name":"December guest"' in done.stdout, done.stdout

    # The same invite from the command line.
    done = bash("set -e\n" + fill(block_with("keyhouse login")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "key:   created " in done.stdout and "sync:  applied" in done.stdout

    # Many guests at once: the README's CSV, as is.
    (tmp_path / "guests.csv").write_text(block_with("email,name,lock"), encoding="utf-8")
    done = bash("keyhouse invite --csv guests.csv")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("row 2: unchanged guest@example.com key ")
    assert lines[1].startswith("row 3: ok cleaner@example.com key ")

    # Be the cleaner at the door: every line does what its comment says.
    sim = block_with("keyhouse sim keypad")
    prelude = f"TOKEN={live_server.token}; API={live_server.url}\n"
    for line in sim.splitlines():
        done = bash(prelude + "\n".join(sim.splitlines()[:1]) + "\n" + line)
        expected = 3 if "exit 3" in line else 0
        assert done.returncode == expected, (line, done.stdout, done.stderr)
        if "opened" in line.split("#")[-1]:
            assert done.stdout.startswith("opened: "), (line, done.stdout)
        if "refused" in line.split("#")[-1]:
            assert done.stdout.startswith("refused: "), (line, done.stdout)
