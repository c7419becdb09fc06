"""The simulator's state store: every board's state in one file, the current one locked for an invocation.

The state file (:class:`~evl_net.transports.sim.state.StateFile`: locking,
atomic writes) holds the state of every board used with it.  The current
board's state is at the top; switching boards sets it aside under ``others``
(by key: a board file's absolute path, or the host board's name) instead of
losing it, and brings the new board's back, or boots the board afresh:

* a board seen for the first time, or whose content changed, boots afresh
  (its ``port = true`` interfaces enabled with the kernel defaults); a board
  is known by its content (:func:`~evl_net.transports.sim.board.fingerprint`),
  so reinstalling the package or touching the file keeps its state;
* a host-mirror board is reconciled with the live kernel instead: a device
  that went down, vanished or came back with a new ifindex lost its port, as
  NETDEV_GOING_DOWN does (docs/abi.md, "Device going down"); other ports,
  filters and the VLAN map stay.

:meth:`Store.load` locks the file until :meth:`Store.close`, at the end of
the invocation or before a long wait (a solicitation), so that other
invocations need not queue behind it.  A file that is not a
state of ours is the "corrupt" error and is left untouched.
"""

from __future__ import annotations

import os
from typing import Any

from evl_net.model import ShapeError, to_json
from evl_net.transports.sim import board as boards
from evl_net.transports.sim import host_netns
from evl_net.transports.sim.kernel import boot, dismantle
from evl_net.transports.sim.records import BoardState, HostState, read_state
from evl_net.transports.sim.state import StateFile, corrupt


def board_key(path: str) -> str:
    """A board's key in the state file: a shipped board's name (wherever the package is), else the file's path."""
    full = os.path.abspath(path)
    if os.path.dirname(full) == os.path.abspath(boards.BOARDS_DIR) and full.endswith(".toml"):
        return os.path.basename(full)[: -len(".toml")]
    return full


def legacy_key(key: str) -> str:
    """A key as this release writes it: older ones keyed a shipped board by its installed path."""
    parent, name = os.path.split(key)
    if name.endswith(".toml") and os.path.basename(parent) == "boards" and parent.endswith(f"evl_net{os.sep}boards"):
        return name[: -len(".toml")]
    return key


class Store:
    """The state file of the simulator, with the state of the board in use current."""

    def __init__(self, path: str) -> None:
        self.file = StateFile(path)
        #: The file needs writing whatever the operations did (a board switched or booted).
        self.dirty = False
        self._others: dict[str, BoardState] = {}

    @property
    def path(self) -> str:
        """The state file's path."""
        return self.file.path

    def load(self, spec: str | None) -> tuple[BoardState, str | None]:
        """Lock the file; (the state of board ``spec``, the netns it mirrors or None for a board file)."""
        netns = host_netns(spec)
        if netns is not None:
            return self._load_host(netns), netns
        _name, path = boards.locate(spec)
        key = board_key(path)
        stamp = boards.stamp(path)
        self.file.acquire()
        try:
            state = self._current(key)
            if state is None or stamp is None or state.stamp != stamp:
                # Not known, or the file was touched: its content decides (a stat alone is the fast path).
                digest = boards.fingerprint(path)
                if state is not None and boards.legacy_fingerprint_holds(state.board.fingerprint, path):
                    state.board.fingerprint = digest  # a state of an older release, of this very file
                if state is None or state.board.fingerprint != digest:
                    state = self._adopt(boot(boards.load(spec)), key)
                # Taken before the read, so a change meanwhile is seen next time; not kept when the file
                # changed within the clock's resolution (an edit in the same tick would look untouched).
                state.stamp = stamp if boards.stamp_settled(path) else None
                self.dirty = True
        except BaseException:
            self.file.release()
            raise
        return state, None

    def _load_host(self, netns: str) -> BoardState:
        """The state of the host board mirroring ``netns``, reconciled with what the kernel has now."""
        from evl_net.transports.sim import host

        snap = host.snapshot(netns or None)
        self.file.acquire()
        try:
            state = self._current(snap.board.name)
            if state is None:
                state = self._adopt(boot(snap.board), snap.board.name)
                state.host = HostState(ifindex=dict(snap.ifindex))
            else:
                self._reconcile(state, snap)
        except BaseException:
            self.file.release()
            raise
        return state

    def refresh_host(self, state: BoardState, netns: str) -> BoardState:
        """``state`` reconciled with the kernel again, after a change of its links (the file stays locked)."""
        from evl_net.transports.sim import host

        self._reconcile(state, host.snapshot(netns or None))
        return state

    def _reconcile(self, state: BoardState, snap: Any) -> None:
        """Bring a host board's state to a new snapshot: ports whose devices went down or away are gone."""
        if state.board.fingerprint != snap.board.fingerprint:
            known = state.host.ifindex if state.host is not None else {}
            board = state.board  # dismantling needs the old board's parents
            for port in list(state.ports):
                devs = {port, board.real_device(port)}
                if any(d not in snap.ifindex or snap.ifindex[d] != known.get(d) or not snap.admin_up[d] for d in devs):
                    dismantle(state, port)
            state.counters = {k: v for k, v in state.counters.items() if snap.ifindex.get(k) == known.get(k)}
            state.board = snap.board
            self.dirty = True
        state.host = HostState(ifindex=dict(snap.ifindex))

    def _current(self, key: str) -> BoardState | None:
        """The stored state of board ``key``, made current (None: it has none); the others set aside."""
        raw = self.file.read()
        if raw is None:
            self._others = {}
            return None
        try:
            state: BoardState | None = read_state(raw)
        except RecursionError:
            raise corrupt(self.path, "nested too deep") from None
        except ShapeError as exc:
            raise corrupt(self.path, str(exc)) from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a shape the checks missed
            raise corrupt(self.path, f"{type(exc).__name__}: {exc}") from None
        assert state is not None
        others = state.others or {}
        state.others = None
        for old in [k for k in others if legacy_key(k) != k]:  # older releases keyed shipped boards by path
            others.setdefault(legacy_key(old), others.pop(old))
        if state.key is not None:
            state.key = legacy_key(state.key)
        if state.key != key:
            others[state.key or state.board.name] = state
            state = others.pop(key, None)
            self.dirty = True
        self._others = others
        if state is not None:
            state.others = others
        return state

    def _adopt(self, state: BoardState, key: str) -> BoardState:
        state.key = key
        state.others = self._others
        self.dirty = True
        return state

    def close(self, state: BoardState | None, dirty: bool) -> None:
        """Store ``state`` when it changed (``dirty``, or a board switch), and unlock."""
        try:
            if state is not None and (dirty or self.dirty):
                self.file.write(to_json(state), default=to_json)
        finally:
            self.dirty = False
            self.file.release()

    def reset(self) -> bool:
        """Forget every stored state: the next use boots the board afresh.  Whether there was one."""
        self.file.acquire()
        try:
            return self.file.remove()
        finally:
            self.file.release()
