"""Bring a board to a setup, or one part of its setup to what is wanted: one call, one record of it.

:func:`converge` is ``evl net-config apply`` as a library call: read the
board, plan, and (unless ``check``) run the plan under the board's lock,
restoring the board when a step fails.  Given ``edit`` instead of a setup, the
setup is the board's own (:func:`~evl_net.netconfig.export.setup_of`) as
``edit`` changes it, so that one port, the VLAN filter or one peer can be
changed on its own while the planner still does what the kernel needs around
it (a pool resize takes the device's ports down and up and reinstalls their
filter; dropping one ARP entry flushes the cache and solicits the others
again).  This is what the Ansible modules of ``evl.net`` run on a board.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evl_core.errors import EvlError

if TYPE_CHECKING:
    from evl_net.api import Board
    from evl_net.netconfig import Setup
    from evl_net.netconfig.apply import StepResult
    from evl_net.netconfig.live import Live
    from evl_net.netconfig.plan import Step

#: ``edit(setup, live)`` changes the board's own setup in place; it returns the problems that keep it from doing so.
Edit = Callable[["Setup", "Live"], list[str]]


@dataclass
class Converged:
    """What converging did: the plan's steps, how each went when applied, the setup before and after.

    ``before`` and ``after`` are the board's setup as ``evl net-config
    export`` writes it, before and as the plan leaves it; ``changed`` is
    whether the board was (or, in check mode, would be) changed.
    """

    changed: bool = False
    steps: list[Step] = field(default_factory=list)
    results: list[StepResult] | None = None
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    rolled_back: bool = False
    rollback_failures: list[str] = field(default_factory=list)
    before: str = ""
    after: str = ""
    #: the board as the plan leaves it (None when it failed: then what the board holds is not known here)
    end: Live | None = None

    @property
    def failed(self) -> bool:
        return bool(self.problems) or self.error is not None

    @property
    def message(self) -> str:
        """One line saying why it failed ("" when it did not)."""
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            return self.problems[0] + more
        if self.error is None:
            return ""
        if self.rolled_back:
            back = "the board could not be restored entirely" if self.rollback_failures else "the board was restored"
            return f"{self.error}; {back}"
        return self.error

    def to_json(self) -> dict[str, Any]:
        steps = [r.to_json() for r in self.results] if self.results is not None else [s.to_json() for s in self.steps]
        return {
            "changed": self.changed,
            "steps": steps,
            "problems": list(self.problems),
            "error": self.error,
            "rolled_back": self.rolled_back,
            "rollback_failures": list(self.rollback_failures),
        }


def converge(
    board: Board,
    setup: Setup | None = None,
    edit: Edit | None = None,
    check: bool = False,
    env: Mapping[str, str] | None = None,
    lock_timeout: float = 30.0,
    rollback: bool = True,
) -> Converged:
    """Bring ``board`` to ``setup`` (or to its own setup changed by ``edit``); ``check``: plan only.

    Never raises :class:`EvlError`: what went wrong is in the record
    (``problems`` for what cannot be planned, ``error`` for what failed).
    The board's lock is held from the first read to the last step, unless
    ``check``; ``env`` says where the lock is (``EVL_NET_AGENT_DIR``).
    """
    import os

    from evl_net.netconfig import apply, export, live, plan

    if (setup is None) == (edit is None):
        raise TypeError("converge: give either a setup or an edit")
    out = Converged()
    lock = nullcontext() if check else apply.board_lock(os.environ if env is None else env, lock_timeout)
    try:
        with lock:
            start = live.read(board, setup)
            out.before = export.render(export.setup_of(start))
            if edit is not None:
                setup = export.setup_of(start)
                out.problems = edit(setup, start)
                if out.problems:
                    return out
                live.add_routes(board, start, setup)
            assert setup is not None
            the_plan = plan.make(setup, start)
            # an edit's setup is the board's own: the keys of its problems are no file's the user wrote
            out.steps, out.problems = the_plan.steps, list(the_plan.messages if edit else the_plan.problems)
            out.end = the_plan.after
            out.after = export.render(export.setup_of(the_plan.after))
            if out.problems or not out.steps:
                return out
            out.changed = True
            if check:
                return out
            applied = apply.execute(board, the_plan.steps, start, rollback=rollback)
            out.results = applied.results
            out.rolled_back, out.rollback_failures = applied.rolled_back, applied.rollback_failures
            if not applied.ok:
                out.error = f"apply failed: {applied.error}"
                # the board was changed if a step stayed done, or the rollback could not restore it all
                stayed = any(r.status in (apply.DONE, apply.NOT_UNDONE) for r in applied.results)
                out.changed = stayed or bool(applied.rollback_failures)
    except EvlError as exc:
        out.error = exc.said()
    if out.failed:
        out.end, out.after = None, ""  # what the plan would have left is not what the board holds
    return out
