"""One worker measures on a device at a time; what else runs meanwhile is recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.worker.contention import ContentionProbe
from app.worker.device_lock import DeviceBusy, DeviceLock, device_name
from tests.worker.test_runner import CLI, make_config


def test_device_lock_second_holder_refused_with_the_first_named(tmp_path: Path) -> None:
    with DeviceLock(tmp_path, "cpu") as first:
        busy = rf"device cpu is in use by worker .*:{os.getpid()}"
        with pytest.raises(DeviceBusy, match=busy), DeviceLock(tmp_path, "cpu", wait=False):
            pass
        assert first.key.endswith("/cpu")
    with DeviceLock(tmp_path, "cpu", wait=False):  # released on exit
        pass


def test_device_lock_waits_for_the_holder(tmp_path: Path) -> None:
    # The holder keeps the lock until told to let go, and it is told only once the second
    # lock has said that it waits: no clock in the test, so a loaded machine cannot make
    # the second lock find the device free (or time out) by chance.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from app.worker.device_lock import DeviceLock\n"
            f"with DeviceLock(Path({str(tmp_path)!r}), 'cpu'):\n"
            "    print('held', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    messages: list[str] = []

    def let_go(message: str) -> None:
        messages.append(message)
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()

    with DeviceLock(tmp_path, "cpu", on_wait=let_go) as lock:
        assert lock.key.endswith("/cpu")
    assert holder.wait(timeout=60) == 0
    assert len(messages) == 1 and f":{holder.pid}" in messages[0]
    assert messages[0].endswith("waiting for it")


def test_device_lock_gpus_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert device_name("cuda") == "cuda:3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert device_name("cuda") == "cuda:0"
    assert device_name("cpu") == "cpu"


def test_device_lock_worker_without_wait_exits_3_with_the_reason(
    database_url: str, tmp_path: Path, tiny_models: Path
) -> None:
    bench = make_config(tmp_path, limit=1)
    locks = tmp_path / "locks"
    env = os.environ | {
        "FLUX_PLAYGROUND_DATABASE_URL": database_url,
        "FLUX_PLAYGROUND_MEDIA_DIR": str(tmp_path / "media"),
        "FLUX_PLAYGROUND_MODELS_DIR": str(tiny_models),
        "FLUX_PLAYGROUND_LOCK_DIR": str(locks),
    }
    with DeviceLock(locks, "cpu"):
        done = subprocess.run(
            [str(CLI), "run", str(bench.config_path), "--no-wait", "--no-metrics"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 3
    assert "device cpu is in use by worker" in done.stderr
    assert "Traceback" not in done.stderr


def test_contention_probe_sees_another_busy_process() -> None:
    # Started through a shell that exits at once: the spinner is then no descendant of this
    # process (whose own children the probe counts as its own work).
    started = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    spinner = int(started.stdout.strip())
    try:
        time.sleep(0.3)
        probe = ContentionProbe("cpu")
        probe.start()
        time.sleep(1.0)
        seen = probe.stop()
    finally:
        os.kill(spinner, signal.SIGKILL)
    assert seen["others_cpu_cores"] > 0.5
    assert seen["contended"] is True
    assert seen["gpu_other_pids"] is None  # a CPU benchmark: not looked at
