"""``latlab pipeline``'s start-up mistakes: one line, the right exit status, nothing served
or sent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services import free_port

HEADER = " | id | receive_time |\n"


def latlab(root: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{root / 'latlab.db'}",
        "LATLAB_PIPELINE_OUT_DIR": str(root / "out"),
        **{f"LATLAB_PIPELINE_{r}_PORT": "0" for r in ("CLIENT", "RECEIVER", "HANDLER", "WRITER")},
        **env,
    }
    if "LATLAB_REDIS_URL" not in env:
        environment.pop("LATLAB_REDIS_URL", None)
    command = [sys.executable, "-m", "latlab", "pipeline", *argv]
    return subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The error line, last (after the log of a start-up that got as far as the store)."""
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("latlab: "), done.stderr
    return last


def test_a_service_alone_without_redis_exits_2_naming_the_setting(tmp_path: Path) -> None:
    done = latlab(tmp_path, "server")
    assert done.returncode == 2
    assert "LATLAB_REDIS_URL" in one_line(done)


def test_a_non_loopback_bind_without_a_token_exits_2(tmp_path: Path) -> None:
    done = latlab(tmp_path, "up", "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "without a token" in one_line(done)


def test_an_unreachable_redis_exits_3_after_the_start_up_wait(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = latlab(tmp_path, "server", LATLAB_REDIS_URL=url, LATLAB_STARTUP_TIMEOUT_S="0.3")
    assert done.returncode == 3
    assert "unreachable" in one_line(done)


def test_send_to_a_receiver_that_does_not_answer_exits_1(tmp_path: Path) -> None:
    receiver = f"http://127.0.0.1:{free_port()}"
    done = latlab(tmp_path, "send", "-n", "3", "--server-url", receiver)
    assert done.returncode == 1
    assert "cannot reach" in one_line(done)
    assert done.stdout == ""


def test_an_out_dir_written_from_another_queue_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    line = " | 8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11 | 2026-12-03 10:00:00.000000 |\n"
    (out / "2.txt").write_text(HEADER + line)
    done = latlab(tmp_path, "up")
    assert done.returncode == 2
    assert "do not match the queue" in one_line(done)


def test_the_store_and_log_level_options_win_over_their_variables(tmp_path: Path) -> None:
    """Found in review: the services read LATLAB_STORAGE_URL and LATLAB_LOG_LEVEL, but had no
    --storage-url or --log-level as serve and worker have. Unusable variables, good options:
    the start gets as far as comparing the out dir with the queue in the store chosen."""
    out = tmp_path / "out"
    out.mkdir()
    line = " | 8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11 | 2026-12-03 10:00:00.000000 |\n"
    (out / "2.txt").write_text(HEADER + line)
    chosen = tmp_path / "chosen.db"
    options = ("--storage-url", f"sqlite+aiosqlite:///{chosen}", "--log-level", "debug")
    done = latlab(
        tmp_path, "up", *options, LATLAB_STORAGE_URL="foo://x", LATLAB_LOG_LEVEL="nonsense"
    )
    assert done.returncode == 2
    assert "do not match the queue" in one_line(done)
    assert chosen.exists()
