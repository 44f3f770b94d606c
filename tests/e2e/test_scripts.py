"""The README's commands as a newcomer types them: `bash scripts/serve` with global options among
its arguments, and where the global options of `keyhouse` go."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_until
from keyhouse.cli.main import misplaced_global_option

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.sqlite_only("scripts/serve's first start makes the data folder's SQLite file")
def test_serve_script_takes_data_and_port(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYHOUSE_")},
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "share"),
        "XDG_CONFIG_HOME": str(home / "config"),
        # the test's own interpreter's venv is the one the script would make
        "PYTHON": sys.executable,
    }
    # a relative --data, from a folder other than the repository's
    process = subprocess.Popen(
        ["bash", str(REPO / "scripts" / "serve"), "--data", "mydata", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    try:

        def answers() -> bool:
            assert process.poll() is None, "".join(lines)
            try:
                return httpx.get(f"http://127.0.0.1:{port}/smartlock", timeout=1).status_code == 401
            except httpx.TransportError:
                return False

        wait_until(answers, timeout=90, what="scripts/serve to answer")
        assert (tmp_path / "mydata" / "keyhouse.db").exists(), "".join(lines)
        assert "kh_" in "".join(lines)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.store_free
def test_a_global_option_after_the_command_says_where_it_goes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "keyhouse", "serve", "--data", str(tmp_path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    assert "--data is an option of keyhouse itself: put it before the command" in done.stderr
    assert "keyhouse --data VALUE serve" in done.stderr
    assert not (tmp_path / "keyhouse.db").exists()


@pytest.mark.store_free
def test_misplaced_global_options_are_recognised() -> None:
    assert misplaced_global_option(["--data", "d", "serve", "--port", "1"]) is None
    assert misplaced_global_option(["--data=d", "admin", "mail", "list"]) is None
    assert misplaced_global_option(["--profile", "p", "locks"]) is None
    assert "--profile" in (misplaced_global_option(["locks", "--profile", "p"]) or "")
    assert "'keyhouse --data VALUE admin mail list …'" in (
        misplaced_global_option(["admin", "mail", "list", "--data=d"]) or ""
    )
    # after `--` everything is an argument
    assert misplaced_global_option(["keys", "add", "--", "--data"]) is None
