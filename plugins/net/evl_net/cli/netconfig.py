"""``evl net-config``: a board's whole out-of-band network setup as files (see :mod:`evl_net.netconfig`).

``validate`` checks files; ``plan`` reads the board and prints the steps that
would bring it to them (exit 0: nothing to do, 2: changes pending, 1: error);
``apply`` runs them, restoring the board when a step fails; ``export`` prints
the board's setup as a file.  The board is reached through the library API
(:mod:`evl_net.api`), on any transport; ``--remote``/``--hosts`` name boards
reached over SSH, several at once with a table of per-board results.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evl_core.commands import Context
from evl_core.errors import EvlError, shown

if TYPE_CHECKING:
    from evl_net.api import Board
    from evl_net.netconfig import Setup
    from evl_net.netconfig.apply import Applied
    from evl_net.netconfig.plan import Plan

EXIT_CHANGES = 2
LOCK_TIMEOUT = 30.0


def _lock_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"invalid lock timeout '{shown(text)}': expected seconds in 0..3600")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evl net-config",
        description="A board's out-of-band network setup (interfaces, oob ports, VLAN filter, eBPF RX filters, "
        "peers) as TOML files: check them, plan and apply them on a board, export a board's setup.",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="what", metavar="COMMAND")
    sub.required = True
    validate = sub.add_parser(
        "validate",
        help="check files, reporting every problem as FILE:LINE: key.path: what is wrong (exit 1); "
        "the board is not touched",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="net-config files, layered in this order")
    plan = sub.add_parser(
        "plan",
        help="print the ordered steps that would bring the board to the files "
        "(exit 0: nothing to do, 2: changes pending, 1: error)",
    )
    apply = sub.add_parser(
        "apply",
        help="bring the board to the files, in dependency order; on a failure, restore it as it was",
    )
    export = sub.add_parser("export", help="print the board's out-of-band setup as a net-config file")
    for command in (plan, apply):
        command.add_argument("files", nargs="+", metavar="FILE", help="net-config files, layered in this order")
        command.add_argument("--diff", action="store_true", help="also show the setup before and after, as a diff")
    apply.add_argument("--check", action="store_true", help="plan only: change nothing (exit as plan does)")
    apply.add_argument(
        "--no-rollback", action="store_true", help="when a step fails, leave the board as the failure left it"
    )
    apply.add_argument(
        "--lock-timeout",
        type=_lock_timeout,
        default=LOCK_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the board's lock (default {LOCK_TIMEOUT:g})",
    )
    export.add_argument("--output", metavar="FILE", help="write the file there (atomically) rather than to stdout")
    for command in (plan, apply, export):
        board = command.add_argument_group("the board")
        board.add_argument("--transport", metavar="NAME", help="auto (default), sim, ioctl or remote")
        board.add_argument("--board", metavar="BOARD", help="the simulated board (also EVL_SIM_BOARD)")
        board.add_argument(
            "--remote", action="append", default=[], metavar="[USER@]HOST[:PORT]", help="a board over SSH (repeatable)"
        )
        board.add_argument("--hosts", metavar="FILE", help="boards over SSH, one [user@]host[:port] a line")
        board.add_argument(
            "--jobs", metavar="N", help="boards served at once (default: all, within the open-file and process limits)"
        )
        board.add_argument("--ssh", metavar="OPTIONS", help="options for ssh (host-key checking cannot be weakened)")
        board.add_argument("--timeout", metavar="SECONDS", help="per request on a remote board (default 10)")
        board.add_argument(
            "--accept-new-host-key", action="store_true", help="trust a board's host key on first contact"
        )
    return parser


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.what == "validate":
        return _validate(args, ctx)
    setup = None
    if args.what in ("plan", "apply"):
        setup = _read(args, ctx)
        if setup is None:
            return 1
    if args.remote or args.hosts or _remote_by_env(args, ctx):
        from evl_net.transports.remote.targets import targets

        found = targets(_request(args), ctx.env)
        if len(found) > 1 or args.hosts:
            if args.what == "export":
                raise EvlError(f"export reads one board, and {len(found)} are given (--remote, --hosts)")
            return _fleet(args, ctx, setup, [t.label for t in found])
        args.remote = [found[0].label]
    return _one(args, ctx, setup, ctx.stdout)


def _remote_by_env(args: argparse.Namespace, ctx: Context) -> bool:
    from evl_net.engine import select

    return select.remote_wanted(_request(args), ctx.env)


def _request(args: argparse.Namespace) -> Any:
    from evl_net.engine.request import Request

    return Request(
        transport=args.transport,
        board=args.board,
        remotes=list(args.remote),
        hosts=args.hosts,
        jobs=args.jobs,
        ssh=args.ssh,
        timeout=args.timeout,
        accept_new_host_key=args.accept_new_host_key,
    )


def _validate(args: argparse.Namespace, ctx: Context) -> int:
    from evl_net.netconfig import read

    _, problems = read(args.files)
    if args.json:
        data = {
            "valid": not problems,
            "files": args.files,
            "problems": [{"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in problems],
        }
        ctx.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")
    else:
        for p in problems:
            ctx.stderr.write(f"{ctx.prog}: {p}\n")
        if not problems:
            ctx.stdout.write("".join(f"{shown(path)}: valid\n" for path in args.files))
    return 1 if problems else 0


def _read(args: argparse.Namespace, ctx: Context) -> Setup | None:
    from evl_net.netconfig import read

    setup, problems = read(args.files)
    for p in problems:
        ctx.stderr.write(f"{ctx.prog}: {p}\n")
    return None if problems else setup


def _open(args: argparse.Namespace, ctx: Context, remote: str | None, console: Any) -> Board:
    from evl_net import api

    if remote is not None:
        options = {"ssh": args.ssh, "timeout": args.timeout, "accept_new_host_key": args.accept_new_host_key}
        return api.open_board(transport="remote", remote=remote, env=ctx.env, console=console, **options)
    return api.open_board(transport=args.transport or "auto", board=args.board, env=ctx.env, console=console)


# -- one board --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one board did: its status (ok, changes, changed, failed or how it did not answer), and the record."""

    board: str
    status: str
    plan: Plan | None = None
    applied: Applied | None = None
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    #: for a board that did not answer: how, without the board's name (the table's RESULT)
    reason: str | None = None
    text: str = ""
    elapsed_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"board": self.board, "status": self.status}
        if self.applied is not None:
            out["steps"] = [r.to_json() for r in self.applied.results]
            out["rolled_back"] = self.applied.rolled_back
            out["rollback_failures"] = self.applied.rollback_failures
        elif self.plan is not None:
            out["steps"] = [s.to_json() for s in self.plan.steps]
        out["problems"] = self.problems
        out["error"] = self.error
        out["elapsed_ms"] = self.elapsed_ms
        return out


def _one(args: argparse.Namespace, ctx: Context, setup: Setup | None, out: Any) -> int:
    console = ctx.stderr if not args.json else None
    remote = args.remote[0] if args.remote else None
    label = remote or "board"
    progress = _Progress(ctx, args) if args.what == "apply" and not args.check else None
    outcome = _work(args, ctx, setup, remote, label, console, progress)
    if args.what == "export":
        if outcome.error is not None:
            ctx.stderr.write(f"{ctx.prog}: {outcome.error}\n")
            return 1
        if args.output:
            _write_atomically(args.output, outcome.text)
        else:
            out.write(outcome.text)
        return 0
    if args.json:
        out.write(json.dumps(outcome.to_json(), separators=(",", ":")) + "\n")
    else:
        out.write(outcome.text)
        for problem in outcome.problems:
            ctx.stderr.write(f"{ctx.prog}: {problem}\n")
        if outcome.error is not None:
            ctx.stderr.write(f"{ctx.prog}: {outcome.error}\n")
    return _exit(outcome.status)


def _exit(status: str) -> int:
    return {"ok": 0, "changed": 0, "changes": EXIT_CHANGES}.get(status, 1)


def _work(
    args: argparse.Namespace,
    ctx: Context,
    setup: Setup | None,
    remote: str | None,
    label: str,
    console: Any,
    progress: _Progress | None,
) -> Outcome:
    """Open the board, read it, plan, and (apply) run the plan: one board's whole job, never raising EvlError."""
    from evl_net.netconfig import export, live, plan

    outcome = Outcome(label, "failed")
    try:
        with _open(args, ctx, remote, console) as board:
            if args.what == "export":
                outcome.text = export.render(export.setup_of(live.read(board)), title=f"evl net-config export: {label}")
                outcome.status = "ok"
                return outcome
            assert setup is not None
            applying = args.what == "apply" and not args.check
            from contextlib import nullcontext

            from evl_net.netconfig.apply import board_lock

            lock = board_lock(ctx.env, args.lock_timeout) if applying and remote is None else nullcontext()
            if applying and remote is not None:
                try:
                    board.transport.hold_board_lock(True)  # released when the session ends
                except OSError as exc:
                    raise EvlError.from_oserror("cannot lock the board", exc) from None
            with lock:
                start = live.read(board, setup)
                the_plan = plan.make(setup, start)
                outcome.plan = the_plan
                outcome.problems = the_plan.problems
                text = _diff(start, the_plan) if args.diff else ""
                if the_plan.problems:
                    outcome.text = text
                    return outcome
                if not applying:
                    outcome.text = text + _plan_text(the_plan)
                    outcome.status = "changes" if the_plan.steps else "ok"
                    return outcome
                if not the_plan.steps:
                    outcome.text = text + "apply: nothing to do: the board matches the files\n"
                    outcome.status = "ok"
                    return outcome
                from evl_net.netconfig import apply

                if progress is not None:
                    progress.start(text, len(the_plan.steps))
                applied = apply.execute(
                    board,
                    the_plan.steps,
                    start,
                    rollback=not args.no_rollback,
                    progress=progress.step if progress is not None else None,
                )
                outcome.applied = applied
                shown = progress is not None
                outcome.text = ("" if shown else text) + _applied_text(applied, shown)
                outcome.status = "changed" if applied.ok else "failed"
                if not applied.ok:
                    outcome.error = f"apply failed: {applied.error}"
                return outcome
    except EvlError as exc:
        outcome.status = getattr(exc, "status", "failed")
        outcome.error = exc.said()
        outcome.reason = getattr(exc, "reason", None)
        return outcome


def _plan_text(the_plan: Plan) -> str:
    if not the_plan.steps:
        return "no changes: the board matches the files\n"
    lines = [s.line() + "\n" for s in the_plan.steps]
    counts = {sign: sum(s.sign == sign for s in the_plan.steps) for sign in "+~-"}
    lines.append(f"plan: {counts['+']} to add, {counts['~']} to change, {counts['-']} to remove\n")
    return "".join(lines)


def _applied_text(applied: Applied, shown: bool) -> str:
    """The end of an apply; ``shown``: each step's line was printed as it ended, so only what came after is."""
    from evl_net.netconfig.apply import DONE, FAILED

    if applied.ok:
        return f"apply: {len(applied.results)} step{'s' * (len(applied.results) != 1)} done\n"
    lines = []
    if applied.rolled_back:
        if applied.rollback_failures:
            lines.append("rollback: the board could not be restored entirely:\n")
            lines += [f"  {f}\n" for f in applied.rollback_failures]
        else:
            lines.append("rollback: the board is back where it started\n")
    for r in applied.results:
        if not shown or r.status not in (DONE, FAILED):
            lines.append(f"{r.step.line()}: {r.status}" + (f": {r.error}" if r.error else "") + "\n")
    return "".join(lines)


def _diff(start: Any, the_plan: Plan) -> str:
    import difflib

    from evl_net.netconfig import export

    before = export.render(export.setup_of(start)).splitlines(keepends=True)
    after = export.render(export.setup_of(the_plan.after)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, "before", "after"))


class _Progress:
    """Apply's running account: each step's line as it ends; on a TTY, the step running meanwhile."""

    def __init__(self, ctx: Context, args: argparse.Namespace) -> None:
        self.ctx = ctx
        self.json = args.json
        self.tty = not args.json and _isatty(ctx.stderr)
        self.text = ""
        self.total = 0
        self.count = 0

    def start(self, text: str, total: int) -> None:
        self.total = total
        if not self.json and text:
            self.ctx.stdout.write(text)
            self.ctx.stdout.flush()

    def step(self, result: Any) -> None:
        self.count += 1
        if self.json:
            return
        if self.tty:
            self.ctx.stderr.write(f"\r\x1b[K[{self.count}/{self.total}] ")
            self.ctx.stderr.flush()
        said = f": {result.error}" if result.error else ""
        self.ctx.stdout.write(f"{result.step.line()}: {result.status}{said}\n")
        self.ctx.stdout.flush()
        if self.tty and self.count == self.total:
            self.ctx.stderr.write("\r\x1b[K")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _write_atomically(path: str, text: str) -> None:
    """Write ``text`` at ``path`` through a temporary file renamed over it: never half a file."""
    import os
    import stat
    import tempfile

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise EvlError(f"cannot write {shown(path)}: not a regular file")
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise EvlError(f"cannot write {shown(path)}", exc.errno) from None
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".evl-net-config.", dir=directory)
    except OSError as exc:
        raise EvlError(f"cannot write {shown(path)}", exc.errno) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise EvlError(f"cannot write {shown(path)}", exc.errno) from None


# -- several boards ---------------------------------------------------------------------------------


def _fleet(args: argparse.Namespace, ctx: Context, setup: Setup | None, boards: list[str]) -> int:
    """The same job on every board, ``--jobs`` at a time: a table (or JSON), the fleet's exit status."""
    import io
    import time
    from concurrent.futures import ThreadPoolExecutor

    from evl_net.engine import fleet

    jobs = fleet.parse_jobs(_request(args), len(boards))
    done: list[Outcome] = []
    tty = not args.json and _isatty(ctx.stderr)

    def one(label: str) -> Outcome:
        t0 = time.monotonic()
        result = _work(args, ctx, setup, label, label, io.StringIO(), None)
        result.elapsed_ms = int((time.monotonic() - t0) * 1000)
        done.append(result)
        if tty:
            ctx.stderr.write(f"\r\x1b[K{len(done)}/{len(boards)} boards done")
            ctx.stderr.flush()
        return result

    with ThreadPoolExecutor(max_workers=min(jobs, len(boards))) as pool:
        outcomes = sorted(pool.map(one, boards), key=_rank)
    if tty:
        ctx.stderr.write("\r\x1b[K")
    if args.json:
        ctx.stdout.write(json.dumps([o.to_json() for o in outcomes], separators=(",", ":")) + "\n")
    else:
        ctx.stdout.write(_table(outcomes, args.what))
        for o in outcomes:
            for line in [*o.problems, *([o.error] if o.error else [])]:
                ctx.stderr.write(f"{ctx.prog}: {o.board}: {line}\n")
    return _fleet_exit(outcomes)


def _rank(o: Outcome) -> int:
    """Successes first, then boards that failed, then those that did not answer (as ``evl net`` orders them)."""
    from evl_net.transports.remote.client import NO_ANSWER

    return 2 if o.status in NO_ANSWER else 0 if o.status in ("ok", "changes", "changed") else 1


def _summary(o: Outcome, what: str) -> str:
    if o.problems:
        return f"{len(o.problems)} problem{'s' * (len(o.problems) > 1)}: {o.problems[0]}"
    if o.error:
        return o.reason or o.error
    if what == "export":
        return f"{o.text.count(chr(10))} lines"
    steps = len(o.plan.steps) if o.plan is not None else 0
    return f"{steps} step{'s' * (steps != 1)}" + (" done" if o.applied is not None else "")


def _table(outcomes: list[Outcome], what: str) -> str:
    from tabulate import tabulate

    rows = [[o.board, o.status, _summary(o, what), o.elapsed_ms] for o in outcomes]
    return tabulate(rows, headers=["BOARD", "STATUS", "RESULT", "MS"], tablefmt="simple") + "\n"


def _fleet_exit(outcomes: list[Outcome]) -> int:
    from evl_net.engine.fleet import EXIT_FAILED, EXIT_NO_ANSWER
    from evl_net.transports.remote.client import NO_ANSWER

    failed = any(o.status not in ("ok", "changes", "changed") and o.status not in NO_ANSWER for o in outcomes)
    silent = any(o.status in NO_ANSWER for o in outcomes)
    if failed or silent:
        return (EXIT_FAILED if failed else 0) + (EXIT_NO_ANSWER if silent else 0)
    return EXIT_CHANGES if any(o.status == "changes" for o in outcomes) else 0
