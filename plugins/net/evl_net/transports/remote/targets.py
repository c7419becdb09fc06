"""Which boards a command names: ``--remote``, ``--hosts FILE`` or ``EVL_NET_REMOTE``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evl_core.errors import EvlError, shown
from evl_core.files import MiB, read_text
from evl_net.transports import REMOTE_ENV
from evl_net.transports.remote.client import Target

#: The largest hosts file read (a million boards' names fit).
HOSTS_MAX = 16 * MiB


def read_hosts(path: str) -> list[tuple[str, str]]:
    lines = read_text(path, "hosts file", HOSTS_MAX).splitlines()
    out = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if len(text.split()) != 1:
            raise EvlError(f"{shown(path)}:{number}: expected one [USER@]HOST[:PORT] per line, got '{shown(text)}'")
        out.append((text, f"{path}:{number}"))
    return out


def targets(request: Any, env: Mapping[str, str]) -> list[Target]:
    """Every board the command line (or the environment) names, once each, in order."""
    given: list[tuple[str, str]] = [(t, "--remote") for t in request.remotes]
    hosts = getattr(request, "hosts", None)
    if hosts:
        given += read_hosts(hosts)
    if not given and env.get(REMOTE_ENV):
        given = [(t, REMOTE_ENV) for t in env[REMOTE_ENV].split(",")]
    out: list[Target] = []
    seen: set[str] = set()
    for text, where in given:
        if not text.strip():
            raise EvlError(f"empty board name in {where}")
        try:
            target = Target.parse(text)
        except EvlError as exc:
            raise EvlError(f"{exc.message} (in {where})") from None
        if target.label not in seen:
            seen.add(target.label)
            out.append(target)
    if not out:
        if hosts:
            raise EvlError(f"no board in the hosts file {shown(hosts)}")
        raise EvlError(f"no board given: use --remote, --hosts or {REMOTE_ENV}")
    return out
