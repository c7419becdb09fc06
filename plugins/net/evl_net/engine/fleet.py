"""The same ``evl net`` command on many boards at once.

Targets come from ``--remote`` (repeatable), ``--hosts FILE`` (one
``[user@]host[:port]`` a line, ``#`` comments) or ``EVL_NET_REMOTE`` (a comma
list).  Boards are served concurrently by one asyncio loop, at most ``--jobs``
at a time (by default every board at once, within the process's limits); each
board runs the very actions of local use (on a worker thread) over its own
session.

Every board ends with one status: ``ok``, ``changed`` (a mutation changed
something), ``failed`` (the board answered with an error), ``incompatible``
(it does not speak our protocol), ``busy`` (another session kept the board's
lock for the whole wait: nothing was done), or one of the ways it did not
answer: ``unreachable``, ``auth-refused``, ``hostkey-refused``, ``timeout``
and ``lost`` (the session died; during a mutation the board's state is
unknown).

Output: a table (BOARD, STATUS, RESULT, MS; failures last and repeated on
stderr), ``--json`` (one array), ``--jsonl`` (one object per board, as each
finishes) or, with ``--format=prometheus``, one exposition whose series carry
``board="<label>"``.  Exit status: 0 when every board succeeded, else a bitmask: 4 a
board failed (or is incompatible), 8 a board did not answer, 16 a board was
busy (so 12, 20, 24 and 28 too); 1 for an error before any board was contacted.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evl_core.errors import EvlError, one_line, shown, strerror
from evl_core.record import replace
from evl_net.transports.remote.client import (
    BUSY,
    CHANGED,
    FAILED,
    INCOMPATIBLE,
    NO_ANSWER,
    OK,
    Options,
    Session,
    SessionError,
    Target,
    mux_directory,
)
from evl_net.transports.remote.targets import targets

__all__ = ["is_fleet", "parse_jobs", "run", "targets"]

MAX_JOBS = 256
#: Descriptors one board in flight holds (its ssh child's three pipes, their ends here, the event loop's share)
#: and those kept for everything else, for the default --jobs.
FDS_PER_BOARD = 8
FDS_KEPT = 64

EXIT_OK = 0
EXIT_FAILED = 4
EXIT_NO_ANSWER = 8
EXIT_BUSY = 16


def is_fleet(request: Any, found: Sequence[Target]) -> bool:
    """Several boards, a hosts file or --jsonl: per-board results rather than plain output."""
    return len(found) > 1 or bool(getattr(request, "hosts", None)) or request.jsonl


def default_jobs(boards: int) -> int:
    """Every board at once, as far as this process's limits allow: one wave of the fleet's latency.

    A board in flight is an ``ssh`` child and a few descriptors, so the open-file and
    process limits bound it (a quarter of the process limit: the user runs other processes);
    so does :data:`MAX_JOBS`.
    """
    import resource

    bounds = [max(1, boards), MAX_JOBS]
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile != resource.RLIM_INFINITY:
        bounds.append((nofile - FDS_KEPT) // FDS_PER_BOARD)
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY:
        bounds.append(nproc // 4)
    return max(1, min(bounds))


def parse_jobs(request: Any, boards: int = 1) -> int:
    """``--jobs``, or by default :func:`default_jobs` for ``boards`` boards."""
    text = getattr(request, "jobs", None)
    if text is None:
        return default_jobs(boards)
    if not str(text).isascii() or not str(text).isdigit() or not 1 <= int(text) <= MAX_JOBS:
        raise EvlError(f"invalid number of jobs '{shown(str(text))}': expected 1..{MAX_JOBS}")
    return int(text)


# -- one board ------------------------------------------------------------------------


@dataclass
class BoardResult:
    board: str
    status: str
    results: list[Any] = field(default_factory=list)
    error: dict[str, Any] | None = None
    elapsed_ms: int = 0
    log: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "board": self.board,
            "status": self.status,
            "changed": self.status == CHANGED,
            "failed": self.status not in (OK, CHANGED),
            "results": [r.to_json() for r in self.results],
            "error": self.error,
            "elapsed_ms": self.elapsed_ms,
        }
        if self.log:
            out["log"] = self.log
        return out


def _error(exc: BaseException) -> dict[str, Any]:
    import errno as errno_names

    if isinstance(exc, SessionError):
        return {"code": exc.status, "errno": None, "msg": exc.reason}
    if isinstance(exc, EvlError):
        msg = exc.message + (f": {strerror(exc.errno)}" if exc.errno else "")
        return {"code": errno_names.errorcode.get(exc.errno or 0), "errno": exc.errno, "msg": msg}
    return {"code": None, "errno": None, "msg": f"internal error: {type(exc).__name__}: {exc}"}


def _run_steps(request: Any, steps: Sequence[Any], transport: Any, out: list[Any]) -> None:
    """On a worker thread: what ``evl net`` does locally, through this board's transport."""
    from evl_net.engine import execute

    execute.run_all(request, steps, transport, out.append)


async def _board(
    target: Target, request: Any, steps: Sequence[tuple[Any, Any]], opts: Options, gate: asyncio.Semaphore, pool: Any
) -> BoardResult:
    import io

    from evl_net.transports.remote import RemoteTransport

    async with gate:
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        session = Session(target, opts)
        result = BoardResult(target.label, OK)
        console = io.StringIO()
        try:
            await session.open()
            transport = RemoteTransport(
                session, lambda c: asyncio.run_coroutine_threadsafe(c, loop).result(), console=console
            )
            await loop.run_in_executor(pool, _run_steps, request, steps, transport, result.results)
            from evl_net.engine.request import changed as changed_of

            changed = any(changed_of(r) for r in result.results)
            result.status = CHANGED if changed else OK
        except SessionError as exc:
            result.status, result.error = exc.status, _error(exc)
        except EvlError as exc:
            result.status, result.error = FAILED, _error(exc)
        except Exception as exc:  # noqa: BLE001 -- a bug must cost one board, not the fleet: it is that board's error
            result.status, result.error = FAILED, _error(exc)
        finally:
            await session.close()
            result.elapsed_ms = int((time.monotonic() - start) * 1000)
            result.log = console.getvalue().splitlines()
        return result


async def fan_out(
    found: Sequence[Target],
    request: Any,
    steps: Sequence[tuple[Any, Any]],
    opts: Options,
    jobs: int,
    on_done: Callable[[BoardResult], None] | None = None,
) -> list[BoardResult]:
    from concurrent.futures import ThreadPoolExecutor

    gate = asyncio.Semaphore(jobs)
    with ThreadPoolExecutor(max_workers=min(jobs, len(found)), thread_name_prefix="evl-net-board") as pool:
        tasks = [asyncio.ensure_future(_board(t, request, steps, opts, gate, pool)) for t in found]
        if on_done is not None:
            for task in tasks:
                task.add_done_callback(
                    lambda t: on_done(t.result()) if not t.cancelled() and not t.exception() else None
                )
        return list(await asyncio.gather(*tasks))


# -- presentation -----------------------------------------------------------------------------


def _natural(label: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label)]


def _rank(status: str) -> int:
    if status in (OK, CHANGED):
        return 0
    if status in (FAILED, INCOMPATIBLE):
        return 1
    return 2 if status == BUSY else 3


def ordered(results: Sequence[BoardResult]) -> list[BoardResult]:
    """Successes first, then boards that failed, that were busy, that did not answer; by name within."""
    return sorted(results, key=lambda r: (_rank(r.status), _natural(r.board)))


def exit_status(results: Sequence[BoardResult]) -> int:
    code = EXIT_OK
    if any(r.status in (FAILED, INCOMPATIBLE) for r in results):
        code |= EXIT_FAILED
    if any(r.status in NO_ANSWER for r in results):
        code |= EXIT_NO_ANSWER
    if any(r.status == BUSY for r in results):
        code |= EXIT_BUSY
    return code


def render_table(results: Sequence[BoardResult], request: Any, formatters: Mapping[str, Any]) -> str:
    from tabulate import tabulate

    from evl_net.engine.render import render

    rows = []
    for r in ordered(results):
        if r.error is not None:
            text = r.error["msg"]
        else:
            text = "".join(render(res, request, formatters) for res in r.results).rstrip("\n")
        rows.append([r.board, r.status, text, str(r.elapsed_ms)])
    return (
        tabulate(
            rows,
            headers=["BOARD", "STATUS", "RESULT", "MS"],
            tablefmt="simple",
            disable_numparse=True,
            colalign=("left", "left", "left", "right"),
        )
        + "\n"
    )


def render_prometheus(results: Sequence[BoardResult], request: Any, formatters: Mapping[str, Any]) -> str:
    """``--format=prometheus``: one exposition for the fleet, every series labelled ``board="<label>"``.

    Each family is written once (its HELP and TYPE lines, then the samples of every board, in the
    table's order); a board that failed gives no series (its error goes to stderr, as always)."""
    from evl_net.engine import prometheus
    from evl_net.engine.render import render

    merged: dict[str, prometheus.Family] = {}
    for r in ordered(results):
        if r.error is not None:
            continue
        ports: list[Any] = []
        for res in r.results:
            if getattr(res, "action", None) != "query":
                render(res, request, formatters)  # the formatter's own error: it cannot render that
                continue
            rows = getattr(res, "interfaces", None)
            ports.extend(rows if isinstance(rows, list) else [res])
        for family in prometheus.families(ports, {"board": r.board}):
            known = merged.get(family.name)
            merged[family.name] = family if known is None else replace(known, samples=known.samples + family.samples)
    order = {m.name: i for i, m in reversed(list(enumerate(prometheus.METRICS)))}
    return prometheus.text_of(sorted(merged.values(), key=lambda f: order[f.name]))


def run(
    request: Any, steps: Sequence[tuple[Any, Any]], found: Sequence[Target], formatters: Mapping[str, Any], ctx: Any
) -> int:
    """``evl net`` on several boards: fan out, print the per-board results, exit 0 or the bitmask 4|8|16."""
    import json

    jsonl = request.jsonl
    if jsonl and request.json:
        raise EvlError("--json and --jsonl exclude each other")
    prometheus = request.format == "prometheus"
    if jsonl and prometheus:
        raise EvlError("--jsonl and --format=prometheus exclude each other")
    jobs = parse_jobs(request, len(found))
    # one ssh connection per board, kept between runs (a monitoring loop's next call logs in no more)
    opts = replace(Options.from_request(request, ctx.env), mux_dir=mux_directory(ctx.env))

    def stream(result: BoardResult) -> None:
        ctx.stdout.write(json.dumps(result.as_json(), separators=(",", ":")) + "\n")
        ctx.stdout.flush()

    results = asyncio.run(fan_out(found, request, steps, opts, jobs, stream if jsonl else None))
    if request.json:
        ctx.stdout.write(json.dumps([r.as_json() for r in ordered(results)], separators=(",", ":")) + "\n")
    elif prometheus:
        ctx.stdout.write(render_prometheus(results, request, formatters))
    elif not jsonl:
        ctx.stdout.write(render_table(results, request, formatters))
    ctx.stdout.flush()
    bad = [r for r in ordered(results) if r.error is not None]
    for r in bad:
        ctx.stderr.write(one_line(f"{ctx.prog}: {r.board}: {r.status}: {r.error['msg']}") + "\n")  # type: ignore[index]
    if bad:
        failed = sum(1 for r in bad if _rank(r.status) == 1)
        busy = sum(1 for r in bad if r.status == BUSY)
        silent = len(bad) - failed - busy
        ctx.stderr.write(
            f"{ctx.prog}: {len(results) - len(bad)} of {len(results)} boards succeeded, {failed} failed, "
            + (f"{busy} busy, " if busy else "")
            + f"{silent} did not answer\n"
        )
    return exit_status(results)
