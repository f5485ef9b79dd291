"""A real ``python -m lab_app.service`` process for tests, with its lifecycle log lines
collected by a thread so tests can wait on them instead of sleeping."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from lab_app.service.cli import command
from lab_app.service.config import VARIABLES

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0  # two shared cores, FastAPI import: usually under 1 s


class ServiceProcess:
    """One running service process; stderr is read by a thread into ``lines``."""

    def __init__(self, env: dict[str, str], *, port: int = 0) -> None:
        self.command = command(port)
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.port: int | None = None

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def events(self) -> list[str]:
        """The lifecycle events logged so far, in order (``zdlab-service <event> ...``)."""
        with self._changed:
            return [line.split()[1] for line in self.lines if line.startswith("zdlab-service ")]

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until a stderr line matches ``pattern`` (regex search); fail on timeout/EOF."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self.lines:
                match = regex.search(line)
                if match:
                    found.append(match)
                    return True
            return self._eof

        with self._changed:
            self._changed.wait_for(seen, timeout=timeout)
        if not found:
            raise AssertionError(
                f"no stderr line matching {pattern!r} within {timeout} s "
                f"(exit status {self.proc.poll()}); stderr so far:\n{self.stderr}"
            )
        return found[0]

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> int:
        match = self.wait_for_line(r"^zdlab-service ready .*\bport=(\d+)", timeout)
        self.port = int(match.group(1))
        return self.port

    @property
    def url(self) -> str:
        assert self.port is not None, "wait_ready() first"
        return f"http://127.0.0.1:{self.port}"

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit; return its returncode (negative: killed by signal)."""
        returncode = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def service_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any service variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


StartService = Callable[..., ServiceProcess]
