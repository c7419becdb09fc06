"""The simulator's state store: every board's state in one file, the current one locked for an invocation.

The state file (:class:`~evl_net.transports.sim.state.StateFile`: locking,
atomic writes) holds the state of every board used with it, by key (a board
file's absolute path, a shipped board's name, or the host board's name): the
board last stored at the top, the others under ``others``.  Only what
changes is stored (ports, pools, filters, VLAN map, ARP cache, counters, log):
a board file's board, as parsed, is only named there (its name and
fingerprint), and comes from the board cache
(:mod:`~evl_net.transports.sim.boardcache`), parsed once per content.  A board
that differs from its file's (its links were changed) is stored in full, as is
a host mirror's.

Using another board reads its entry and nothing else: the other boards'
entries stay as the file holds them (JSON values, never decoded into records
nor checked until their board is used), and nothing is written unless the
state changed.  A board seen for the first time, or whose content changed,
boots afresh (its ``port = true`` interfaces enabled with the kernel
defaults); a board is known by its content
(:func:`~evl_net.transports.sim.board.fingerprint`), so reinstalling the
package or touching the file keeps its state.  A host-mirror board is
reconciled with the live kernel instead: a device that went down, vanished or
came back with a new ifindex lost its port, as NETDEV_GOING_DOWN does
(docs/abi.md, "Device going down"); other ports, filters and the VLAN map stay.

A state file of the previous format (1: every board stored in full) is read
as it is, and written in this one when it is next stored.

:meth:`Store.load` locks the file until :meth:`Store.close`, at the end of
the invocation or before a long wait (a solicitation), so that other
invocations need not queue behind it.  A file that is not a
state of ours is the "corrupt" error and is left untouched.
"""

from __future__ import annotations

import os

from evl_net.model import ShapeError
from evl_net.transports.sim import board as boards
from evl_net.transports.sim import boardcache, host_netns
from evl_net.transports.sim.kernel import boot, dismantle
from evl_net.transports.sim.records import BoardState, HostState, board_ref, read_state, write_form
from evl_net.transports.sim.state import StateFile, corrupt

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from evl_net.transports.sim.board import Board


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
    """The state file of the simulator, with the state of the board in use current.

    ``cache_dir`` is the board cache's directory (None: the user's,
    :func:`~evl_net.transports.sim.boardcache.default_dir`; "": none).
    """

    def __init__(self, path: str, cache_dir: str | None = None) -> None:
        self.file = StateFile(path)
        self.cache_dir = boardcache.default_dir(os.environ) if cache_dir is None else cache_dir
        #: The file needs writing whatever the operations did (a board booted, a state migrated...).
        self.dirty = False
        #: The entries of the other boards, by key, as the file holds them.
        self._others: dict[str, Any] = {}
        #: The board cache's entry of the current board's file, as parsed (None: a host board).
        self._pristine: bytes | None = None

    @property
    def path(self) -> str:
        """The state file's path."""
        return self.file.path

    def load(self, spec: str | None) -> tuple[BoardState, str | None]:
        """Lock the file; (the state of board ``spec``, the netns it mirrors or None for a board file)."""
        netns = host_netns(spec)
        if netns is not None:
            return self._load_host(netns), netns
        name, path = boards.locate(spec)
        key = board_key(path)
        stamp = boards.stamp(path)
        self.file.acquire()
        try:
            state = self._load_file(key, name, path, stamp)
        except BaseException:
            self.file.release()
            raise
        return state, None

    def _load_file(self, key: str, name: str, path: str, stamp: str | None) -> BoardState:
        entry = self._entry(key)
        state: BoardState | None = None
        if entry is not None and stamp is not None and entry.get("stamp") == stamp:
            # The file is untouched since its content was fingerprinted: a stat is all it costs.
            state = self._read(entry, path, None)
            if state is not None:
                return self._current(state, key)
        # Not known, or the file was touched: its content decides.
        digest = boards.fingerprint(path)
        if entry is not None:
            state = self._read(entry, path, digest)
        if state is not None:
            self._current(state, key)
        else:
            board, self._pristine = self._static(path, name, digest)
            state = self._adopt(boot(board), key)
        # Taken before the read, so a change meanwhile is seen next time; not kept when the file
        # changed within the clock's resolution (an edit in the same tick would look untouched).
        state.stamp = stamp if boards.stamp_settled(path) else None
        self.dirty = True
        return state

    def _read(self, entry: dict[str, Any], path: str, digest: str | None) -> BoardState | None:
        """The state of ``entry`` when it is a state of the content of board file ``path``; None: boot afresh.

        ``digest`` is the file's fingerprint, None when the entry's stamp says it holds.
        """
        try:
            name, fingerprint, named = board_ref(entry)
        except ShapeError as exc:
            raise corrupt(self.path, str(exc)) from None
        if digest is not None and fingerprint != digest:
            if not boards.legacy_fingerprint_holds(fingerprint, path):
                return None  # another content: the board boots afresh
            fingerprint = digest  # a state of an older release, of this very file
        board = None
        if named or (entry.get("host") is None and not entry.get("edited")):
            # Only named, or stored in full by the previous format: the file's board is needed.
            board, self._pristine = self._static(path, name, fingerprint)
            if board.fingerprint != fingerprint:
                return None  # the file changed under an unchanged stamp: another content
        state = self._decode(entry, board if named else None)
        state.board.fingerprint = fingerprint
        if not named and state.host is None and not state.edited:
            # The previous format stored every board in full: only a board that differs from its file's stays so.
            if self._pristine is None:  # not a state this code or the previous one wrote
                raise corrupt(self.path, "a board stored in full, neither edited nor a host mirror, without its file")
            state.edited = not boardcache.unchanged(state.board, self._pristine)
            self.dirty = True
        return state

    def _static(self, path: str, name: str, fingerprint: str | None) -> tuple[Board, bytes]:
        """(the board of file ``path``, as parsed; its board cache entry): from the cache, or parsed and cached.

        ``fingerprint``, when known, is the content expected: the cache is
        looked up by it, and only a miss reads the file.
        """
        if fingerprint is not None:
            data = boardcache.read(self.cache_dir, fingerprint)
            board = boardcache.decode(data, fingerprint, name) if data is not None else None
            if board is not None and data is not None:
                return board, data
        raw = boards.content(path)
        digest = boards.digest(raw)
        if digest != fingerprint:  # the file changed: its new content may be cached already
            data = boardcache.read(self.cache_dir, digest)
            board = boardcache.decode(data, digest, name) if data is not None else None
            if board is not None and data is not None:
                return board, data
        board = boards.parse(raw, path, name)
        data = boardcache.encode(board)
        boardcache.write(self.cache_dir, digest, data)
        return board, data

    def _decode(self, entry: dict[str, Any], board: Board | None) -> BoardState:
        try:
            return read_state(entry, board)
        except RecursionError:
            raise corrupt(self.path, "nested too deep") from None
        except ShapeError as exc:
            raise corrupt(self.path, str(exc)) from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a shape the checks missed
            raise corrupt(self.path, f"{type(exc).__name__}: {exc}") from None

    def _load_host(self, netns: str) -> BoardState:
        """The state of the host board mirroring ``netns``, reconciled with what the kernel has now."""
        from evl_net.transports.sim import host

        snap = host.snapshot(netns or None)
        self.file.acquire()
        try:
            self._pristine = None
            entry = self._entry(snap.board.name)
            if entry is None:
                state = self._adopt(boot(snap.board), snap.board.name)
                state.host = HostState(ifindex=dict(snap.ifindex))
            else:
                state = self._current(self._decode(entry, None), snap.board.name)
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

    def _entry(self, key: str) -> dict[str, Any] | None:
        """The stored entry of board ``key`` (None: it has none); every other one kept, as the file holds it.

        Only the file's structure is checked here (an object of entries, none
        holding others); an entry itself is checked when its board is used.
        """
        raw = self.file.read()
        entries: dict[str, Any] = {}
        self._others = entries
        if raw is None:
            return None
        others = raw.pop("others", None)
        raw.pop("format", None)
        if others is None:
            others = {}
        elif not isinstance(others, dict):
            raise corrupt(self.path, "state.others is not an object")
        for other, value in others.items():
            where = f"state.others.{other}"
            if not isinstance(value, dict):
                raise corrupt(self.path, f"{where} is not an object")
            if value.get("others"):
                raise corrupt(self.path, f"{where}.others: a state set aside holds no others")
            entries.setdefault(legacy_key(other), value)  # older releases keyed shipped boards by path
        top = raw.get("key")
        if top is None:
            try:
                top = board_ref(raw)[0]
            except ShapeError as exc:
                raise corrupt(self.path, str(exc)) from None
        elif not isinstance(top, str):
            raise corrupt(self.path, "state.key is not a string")
        entries[legacy_key(top)] = raw
        return entries.pop(key, None)

    def _current(self, state: BoardState, key: str) -> BoardState:
        """``state``, read from the file, made the current one (as board ``key``'s)."""
        state.key = key
        state.others = self._others
        return state

    def _adopt(self, state: BoardState, key: str) -> BoardState:
        """``state``, just booted, made the current one (as board ``key``'s): the file needs writing."""
        self.dirty = True
        return self._current(state, key)

    def close(self, state: BoardState | None, dirty: bool) -> None:
        """Store ``state`` when it changed (``dirty``, or a board booted), and unlock."""
        try:
            if state is not None and (dirty or self.dirty):
                self.file.write(self.document(state))
        finally:
            self.dirty = False
            self.file.release()

    def document(self, state: BoardState) -> dict[str, Any]:
        """What the state file holds with ``state`` current: its entry at the top, the others as they were."""
        if state.host is None and not state.edited:
            # A board that is no longer its file's (its links changed) is stored in full from now on.
            state.edited = self._pristine is None or not boardcache.unchanged(state.board, self._pristine)
        out = write_form(state)
        others = {k: v for k, v in self._others.items() if k != state.key}
        if others:
            out["others"] = others
        return out

    def reset(self) -> bool:
        """Forget every stored state: the next use boots the board afresh.  Whether there was one."""
        self.file.acquire()
        try:
            return self.file.remove()
        finally:
            self.file.release()
