"""External ``evl-<cmd>`` executables, run the way EVL's C dispatcher runs them."""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

PREFIX = "evl-"


def default_cmddir() -> str:
    """``<prefix>/libexec/evl`` of the installation this interpreter belongs to."""
    return os.path.join(sys.prefix, "libexec", "evl")


def search_path(cmddir: str, env: Mapping[str, str]) -> list[str]:
    """PATH first, then the command directory, as the C tool appends it to PATH."""
    dirs = [d for d in env.get("PATH", os.defpath).split(os.pathsep) if d]
    if cmddir not in dirs:
        dirs.append(cmddir)
    return dirs


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find(name: str, cmddir: str, env: Mapping[str, str]) -> str | None:
    for directory in search_path(cmddir, env):
        candidate = os.path.join(directory, PREFIX + name)
        if _is_executable(candidate):
            return candidate
    return None


def list_all(cmddir: str, env: Mapping[str, str]) -> dict[str, str]:
    """Every external command by name; the first one found on the search path wins."""
    found: dict[str, str] = {}
    for directory in search_path(cmddir, env):
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in entries:
            if not entry.startswith(PREFIX) or len(entry) == len(PREFIX):
                continue
            name = entry[len(PREFIX) :]
            if name not in found and _is_executable(os.path.join(directory, entry)):
                found[name] = os.path.join(directory, entry)
    return found


def describe(path: str, env: Mapping[str, str], timeout: float = 5.0) -> str:
    """The one-line description an EVL command prints for ``-@``."""
    import subprocess

    try:
        proc = subprocess.run(
            [path, "-@"],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    if proc.returncode != 0:
        return ""
    lines = proc.stdout.splitlines()
    return lines[0].strip() if lines else ""


def child_env(cmddir: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment an EVL command expects from its dispatcher.

    Unlike the C tool, an EVL_SYSDIR the user already set is kept, so that a
    command can be pointed at a test sysfs tree.
    """
    out = dict(env)
    out["PATH"] = os.pathsep.join(search_path(cmddir, env))
    out["EVL_CMDDIR"] = cmddir
    out.setdefault("EVL_TESTDIR", os.path.join(os.path.dirname(cmddir.rstrip("/")) or "/", "evl-tests"))
    out.setdefault("EVL_SYSDIR", "/sys/devices/virtual")
    out.setdefault("EVL_TRACEDIR", "/sys/kernel/debug/tracing")
    return out


def run(path: str, name: str, args: list[str], env: Mapping[str, str], replace_process: bool) -> int:
    """Run ``path`` with argv[0] ``evl-<name>``; its exit status becomes ours."""
    argv = [PREFIX + name, *args]
    if replace_process:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(path, argv, dict(env))  # noqa: S606 -- an argv list without a shell: what S603 is ignored for
        except OSError as exc:  # a bad interpreter line, not executable after all...
            return _cannot_run(path, exc)
    import subprocess

    try:
        proc = subprocess.Popen(argv, executable=path, env=dict(env))
    except OSError as exc:
        return _cannot_run(path, exc)
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:  # the child got the SIGINT too; wait for its verdict
            continue
    return 128 - code if code < 0 else code


def _cannot_run(path: str, exc: OSError) -> int:
    """The shell's answer to a command that exists but cannot run: one line, 127 when not found, else 126."""
    from evl_core.errors import EvlError

    sys.stderr.write(EvlError(f"cannot run {path}", exc.errno).format("evl") + "\n")
    return 127 if exc.errno == errno.ENOENT else 126
