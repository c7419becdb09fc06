"""Where the agent records sessions and mutations: syslog, stderr or nowhere."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any


class Log:
    def __init__(self, mode: str, env: Mapping[str, str], stderr: Any = None) -> None:
        self.mode = mode
        self.stderr = stderr if stderr is not None else sys.stderr
        who = env.get("SSH_CONNECTION", "").split()
        self.peer = f"{who[0]} port {who[1]}" if len(who) >= 2 else "local"
        auth = env.get("SSH_USER_AUTH")  # sshd's ExposeAuthInfo: a file naming the key used
        self.key = ""
        if auth:
            try:
                with open(auth, encoding="utf-8", errors="replace") as f:
                    self.key = " key " + " ".join(f.read(512).split()[:3])
            except OSError:
                pass
        if mode == "syslog":
            import syslog

            syslog.openlog("evl-net-agent", syslog.LOG_PID, syslog.LOG_DAEMON)

    def __call__(self, text: str, notice: bool = False) -> None:
        line = f"{text} (from {self.peer}{self.key})"
        if self.mode == "syslog":
            import syslog

            syslog.syslog(syslog.LOG_NOTICE if notice else syslog.LOG_INFO, line)
        elif self.mode == "stderr":
            try:
                self.stderr.write(f"evl-net-agent[{os.getpid()}]: {line}\n")
                self.stderr.flush()
            except (OSError, ValueError):
                pass


def summary(op: str, args: Mapping[str, Any]) -> str:
    shown = {k: (v if k != "data" else f"<{len(v)} base64 chars>") for k, v in args.items()}
    return op + " " + " ".join(f"{k}={v!r}" for k, v in shown.items())
