"""One process per run directory: a live holder refuses a second process by name, a dead one's
lock is cleared, a process may nest its own hold, and only the main process of a distributed run
takes it."""

import json
import os
import socket
import subprocess
import sys

import pytest

from autocoa.runlock import LOCK, RunLockedError, acquire, release, run_lock


@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def hold_as(out, pid: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": socket.gethostname(), "started": 0, "command": "autocoa demo --out x"}
    (out / LOCK).write_text(json.dumps(holder) + "\n")


def test_a_live_holder_refuses_a_second_process_and_a_dead_ones_lock_is_cleared(tmp_path, other_process):
    out = tmp_path / "run"
    hold_as(out, other_process.pid)
    with pytest.raises(RunLockedError, match=rf"in use by pid {other_process.pid} on .*autocoa demo --out x"):
        acquire(out)
    assert json.loads((out / LOCK).read_text())["pid"] == other_process.pid  # the holder's lock is left alone
    other_process.kill()
    other_process.wait()
    with run_lock(out):  # stale: its process has ended
        assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    assert not (out / LOCK).exists()


def test_a_process_nests_its_own_hold(tmp_path):
    out = tmp_path / "run"
    with run_lock(out):
        with run_lock(out / "."):  # the same directory, spelled otherwise
            pass
        assert (out / LOCK).exists()  # the outer hold still stands
    assert not (out / LOCK).exists()
    release(out)  # a release without a hold is nothing


def test_only_the_main_process_of_a_distributed_run_takes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with run_lock(tmp_path / "run"):
        assert not (tmp_path / "run" / LOCK).exists()


def test_a_trainer_and_a_demo_stage_are_refused_on_a_held_directory(tmp_path, other_process, monkeypatch, capsys):
    from autocoa.cli import main
    from autocoa.train.pretrain import PretrainConfig, pretrain

    hold_as(tmp_path / "base", other_process.pid)
    with pytest.raises(RunLockedError):  # before it reads anything: the holder's files stay as they are
        pretrain(tmp_path / "no-world", tmp_path / "base", PretrainConfig())
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == [LOCK]
    # the demo's stage runner: one line naming the holder, exit status 2
    hold_as(tmp_path / "demo" / "world", other_process.pid)
    monkeypatch.setattr(sys, "argv", ["autocoa", "demo", "--fast", "--out", str(tmp_path / "demo")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"in use by pid {other_process.pid}" in err and str(tmp_path / "demo" / "world") in err
