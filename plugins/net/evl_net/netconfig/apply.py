"""Executing a plan on a board, step by step, and restoring the board when a step fails.

Each :class:`~evl_net.netconfig.plan.Step` is one or a few library API calls
(:func:`run_step`).  :func:`execute` runs the steps in order and stops at the
first failure; then, unless told not to, it restores the board to where it
started: it reads the board again and plans the way back to the starting
setup (:func:`evl_net.netconfig.export.setup_of` of the board as first read,
every interface included, the VLAN devices this run created deleted), so a
rollback undoes what the failed run did and what the kernel did with it (a
pool resized takes the ports' filters and ARP entries along, which the way
back installs and solicits again).  Every step ends with one status: done,
failed, undone, not undone (the rollback could not restore everything, and
says what) or not run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evl_core.errors import EvlError
from evl_net.netconfig.live import Live
from evl_net.netconfig.plan import Step

if TYPE_CHECKING:
    from evl_net.api import Board

DONE, FAILED, UNDONE, NOT_UNDONE, NOT_RUN = "done", "failed", "undone", "not undone", "not run"


@dataclass
class StepResult:
    step: Step
    status: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.step.to_json(), "status": self.status, "error": self.error}


@dataclass
class Applied:
    """What an apply did: each step's status; the first failure; what the rollback could not restore."""

    results: list[StepResult]
    error: str | None = None
    rolled_back: bool = False
    rollback_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def run_step(board: Board, step: Step) -> None:
    """Make ``step`` happen on ``board``; EvlError, worded as the library words it, when it does not."""
    a = step.args
    op = step.op
    if op == "create-vlan":
        board.create_vlan(a["ifname"], a["parent"], a["vlan_id"])
    elif op == "delete-vlan":
        board.delete_link(a["ifname"])
    elif op == "set-mtu":
        board.set_mtu(a["ifname"], a["mtu"])
    elif op == "set-up":
        board.set_link_up(a["ifname"], a["up"])
    elif op == "add-address":
        board.add_address(a["ifname"], a["address"])
    elif op == "remove-address":
        board.remove_address(a["ifname"], a["address"])
    elif op == "disable-port":
        board.disable(a["ifname"])
    elif op == "enable-port":
        board.enable(a["ifname"], pool_size=a["pool"], buffer_size=a["buffer"])
    elif op == "resize-pool":
        for port in a["down"]:
            board.disable(port)
        for i, port in enumerate(a["up"]):  # the sizes go with the first port: the others share its pool
            board.enable(port, pool_size=a["pool"] if i == 0 else 0, buffer_size=a["buffer"] if i == 0 else 0)
    elif op == "install-filter":
        _check_object(a["object"], a["sha256"])
        board.set_filter(a["ifname"], a["object"])
    elif op == "remove-filter":
        board.set_filter(a["ifname"], None)
    elif op == "set-vlans":
        board.set_vlans(a["vlans"])
    elif op == "flush-arp":
        board.flush_arp()
    elif op == "solicit":
        board.solicit(a["host"], a["ifname"], permanent=a["permanent"], may_route=a["may_route"])
    else:  # pragma: no cover - every op the planner makes is above
        raise EvlError(f"no way to run a step '{op}'")


def _check_object(path: str, sha256: str) -> None:
    import hashlib

    from evl_core.files import read_regular
    from evl_net.netconfig import OBJECT_MAX

    digest = hashlib.sha256(read_regular(path, "eBPF object", OBJECT_MAX)).hexdigest()
    if digest != sha256:
        raise EvlError(f"{path} changed since the plan was made (sha256 {digest}, planned {sha256})")


def execute(
    board: Board,
    steps: list[Step],
    start: Live,
    rollback: bool = True,
    progress: Callable[[StepResult], None] | None = None,
) -> Applied:
    """Run ``steps`` on ``board`` (read as ``start`` before); on a failure, restore ``start`` unless told not to."""
    results = [StepResult(step, NOT_RUN) for step in steps]
    applied = Applied(results)
    for result in results:
        try:
            run_step(board, result.step)
        except EvlError as exc:
            result.status, result.error = FAILED, exc.said()
            applied.error = f"{result.step.line()}: {result.error}"
            if progress is not None:
                progress(result)
            break
        result.status = DONE
        if progress is not None:
            progress(result)
    if applied.error is None or not rollback:
        return applied
    done = [r for r in results if r.status == DONE]
    if not done and results[0].status == FAILED and not _changed_anything(results[0].step):
        return applied  # nothing was changed: nothing to restore
    applied.rolled_back = True
    applied.rollback_failures = restore(board, start)
    for r in done:
        r.status = NOT_UNDONE if applied.rollback_failures else UNDONE
    return applied


def _changed_anything(step: Step) -> bool:
    """Whether a failed step may have changed the board before failing (a pool resize does, partway)."""
    return step.op == "resize-pool"


def restore(board: Board, start: Live) -> list[str]:
    """Bring ``board`` back to ``start``, as far as it goes; what could not be restored, one line each."""
    from evl_net.netconfig import export, live, plan

    failures: list[str] = []
    try:
        wanted = export.setup_of(start, every_link=True)
        now = live.read(board, wanted)
        created = tuple(n for n, link in now.links.items() if n not in start.links and link.parent)
        back = plan.make(wanted, now, delete=created)
    except EvlError as exc:
        return [f"cannot read the board back: {exc.said()}"]
    failures += back.problems
    for step in back.steps:
        try:
            run_step(board, step)
        except EvlError as exc:
            failures.append(f"{step.line()}: {exc.said()}")
    return failures


# -- the board's lock ------------------------------------------------------------------------------


@contextmanager
def board_lock(env: Mapping[str, str], timeout: float) -> Iterator[None]:
    """Hold the board's mutation lock (the one every agent session takes) for a whole apply."""
    import time

    from evl_net.boardlock import BoardLock, default_state_dir

    lock = BoardLock(default_state_dir(env))
    try:
        try:
            lock.acquire(time.monotonic() + timeout)
        except OSError as exc:
            why = "another apply or session holds it"
            raise EvlError(f"cannot lock the board ({lock.path}): {why}", exc.errno) from None
        yield
    finally:
        lock.release()
        lock.close()
