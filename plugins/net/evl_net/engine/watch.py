"""``evl net -Q --watch``: how a port's counters move, sample after sample.

Each sample reads the ports through the transport (as ``-Q`` does); two
samples give a :class:`Rates` per port: packets and bytes per second, the
pool's use, and how much ``csum errors``, ``rx nomem`` and ``tx nomem`` grew.
The kernel's counters are 64-bit: one that went down went round (when it was
in the upper half: a wrap) or was reset (the port was enabled again: counted
from zero).  On a TTY the view is redrawn in place (``rich``, imported only
here) until ``q`` or Ctrl-C; otherwise one line per port (or one JSON object)
per interval, so it can be piped and logged.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from evl_net.model import DevStat

WRAP = 2**64
DEFAULT_INTERVAL = 1.0
#: Counters shown as rates, and counters shown as growth (what went wrong since the last sample).
RATES = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")
GROWTH = ("csum_errors", "rx_nomem", "tx_nomem")


def delta(before: int, after: int) -> int:
    """How much a 64-bit counter moved: round the top when it was in its upper half, else from a reset."""
    if after >= before:
        return after - before
    if before >= WRAP // 2:
        return after + WRAP - before
    return after


@dataclass(frozen=True)
class Rates:
    """One port between two samples."""

    ifname: str
    seconds: float
    rx_packets: float
    rx_bytes: float
    tx_packets: float
    tx_bytes: float
    skb_free: int
    skb_total: int
    csum_errors: int
    rx_nomem: int
    tx_nomem: int
    oob_port: bool

    @property
    def in_use(self) -> int:
        return max(0, self.skb_total - self.skb_free)

    def grew(self) -> list[str]:
        return [name for name in GROWTH if getattr(self, name)]

    def to_json(self) -> dict[str, Any]:
        """The rates as measured (not rounded: a rate times the interval's ``seconds`` is the count moved)."""
        return {
            "ifname": self.ifname,
            "rx_packets_per_s": self.rx_packets,
            "rx_bytes_per_s": self.rx_bytes,
            "tx_packets_per_s": self.tx_packets,
            "tx_bytes_per_s": self.tx_bytes,
            "skb_free": self.skb_free,
            "skb_total": self.skb_total,
            "csum_errors": self.csum_errors,
            "rx_nomem": self.rx_nomem,
            "tx_nomem": self.tx_nomem,
            "oob_port": self.oob_port,
        }

    def line(self) -> str:
        grew = " ".join(f"{name.replace('_', ' ')} +{getattr(self, name)}" for name in GROWTH)
        return (
            f"{self.ifname}: rx {self.rx_packets:.0f} pkt/s {self.rx_bytes:.0f} B/s"
            f" tx {self.tx_packets:.0f} pkt/s {self.tx_bytes:.0f} B/s"
            f" pool {self.in_use}/{self.skb_total} in use {grew}"
        )


def rates(ifname: str, before: DevStat, after: DevStat, seconds: float) -> Rates:
    def moved(name: str) -> int:
        return delta(getattr(before, name), getattr(after, name))

    def per_s(name: str) -> float:
        return moved(name) / seconds if seconds > 0 else 0.0

    return Rates(
        ifname,
        seconds,
        rx_packets=per_s("rx_packets"),
        rx_bytes=per_s("rx_bytes"),
        tx_packets=per_s("tx_packets"),
        tx_bytes=per_s("tx_bytes"),
        skb_free=after.skb_free,
        skb_total=after.skb_total,
        csum_errors=moved("csum_errors"),
        rx_nomem=moved("rx_nomem"),
        tx_nomem=moved("tx_nomem"),
        oob_port=after.oob_port,
    )


Read = Callable[[], Sequence[tuple[str, DevStat]]]


@dataclass(frozen=True)
class Sample:
    """One interval: when it ended (wall clock), how long it lasted (monotonic), and the ports' rates."""

    wall: float
    seconds: float
    ports: list[Rates]


def samples(
    read: Read,
    interval: float,
    count: int | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Sample]:
    """A :class:`Sample` after each interval; ``count`` intervals, or for ever."""
    before, t0 = dict(read()), clock()
    shown = 0
    while count is None or shown < count:
        sleep(max(0.0, t0 + interval - clock()))
        now = dict(read())
        t1 = clock()
        out = [rates(name, before[name], stat, t1 - t0) for name, stat in now.items() if name in before]
        seconds = t1 - t0
        before, t0 = now, t1
        shown += 1
        yield Sample(time.time(), seconds, out)


MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
MAX_COUNT = 10**9


def parse(request: Any) -> tuple[float, int | None]:
    """``--watch[=SECONDS]`` and ``--count N``, checked: (interval, count or None)."""
    import math

    from evl_core.errors import UsageError, shown

    interval = DEFAULT_INTERVAL
    if request.watch:
        try:
            # digits and one point only: float() would also take "1_0", " 1" and other scripts' digits
            interval = float(request.watch) if _DECIMAL.fullmatch(request.watch) else math.nan
        except ValueError:
            interval = math.nan
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:  # NaN fails both
            raise UsageError(
                f"invalid interval '{shown(request.watch)}': expected seconds in {MIN_INTERVAL:g}..{MAX_INTERVAL:g}"
            )
    count = None
    if request.count is not None:
        text = request.count
        if not text.isascii() or not text.isdigit() or len(text) > 10 or not 1 <= int(text) <= MAX_COUNT:
            raise UsageError(f"invalid count '{shown(text)}': expected 1..{MAX_COUNT}")
        count = int(text)
    return interval, count


def run(request: Any, read: Read, interval: float, count: int | None, stdout: Any, board: str) -> int:
    """``-Q --watch``: the live view on a terminal, lines (or JSON lines) otherwise; 0 on q or Ctrl-C.

    ``read()`` takes one sample (:func:`evl_net.ops.query.sampler`); ``board`` names the board in
    the view's title.
    """
    import sys

    stdin = sys.stdin
    tty = not request.json and _isatty(stdout) and stdin is not None and _isatty(stdin)
    try:
        if tty:
            keys = Keys(stdin.fileno())
            live(samples(read, interval, count, sleep=keys.sleep), interval, str(board), keys, stdout)
        else:
            print_lines(stdout, samples(read, interval, count), request.json)
    except (KeyboardInterrupt, Quit):
        pass
    except Signalled as sig:
        return 128 + sig.signum
    return 0


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def stamp(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(wall))


def print_lines(stream: Any, items: Iterator[Sample], as_json: bool) -> None:
    """The piped form: one line per port per interval, or one JSON object per interval (with the
    interval's measured ``seconds``); flushed after each interval."""
    import json

    for sample in items:
        if as_json:
            obj = {"time": stamp(sample.wall), "seconds": sample.seconds, "ports": [r.to_json() for r in sample.ports]}
            stream.write(json.dumps(obj) + "\n")
        else:
            stream.write("".join(f"{stamp(sample.wall)} {r.line()}\n" for r in sample.ports))
        stream.flush()


# -- the live view -------------------------------------------------------------------------------

BAR = 20


def bar(used: int, total: int) -> str:
    if total <= 0:
        return "-" * BAR
    filled = round(BAR * used / total)
    return "#" * filled + "." * (BAR - filled)


def view(wall: float, ports: Sequence[Rates], interval: float, board: str) -> Any:
    """The live table of one sample (a rich renderable)."""
    from rich.table import Table
    from rich.text import Text

    from evl_core.errors import escape

    table = Table(
        title=Text(f"evl net: {board}, every {interval:g} s, {stamp(wall)} (q to quit)"),  # text, not markup
        title_justify="left",
        expand=False,
    )
    for name in (
        "port",
        "rx pkt/s",
        "rx B/s",
        "tx pkt/s",
        "tx B/s",
        "pool in use",
        *(g.replace("_", " ") for g in GROWTH),
    ):
        table.add_column(name, justify="left" if name in ("port", "pool in use") else "right")
    for r in ports:
        growth = [Text(f"+{getattr(r, n)}", style="bold red" if getattr(r, n) else "") for n in GROWTH]
        table.add_row(
            Text(escape(r.ifname) + ("" if r.oob_port else " (no port)")),  # a name is text, never markup
            f"{r.rx_packets:.0f}",
            f"{r.rx_bytes:.0f}",
            f"{r.tx_packets:.0f}",
            f"{r.tx_bytes:.0f}",
            f"{bar(r.in_use, r.skb_total)} {r.in_use}/{r.skb_total}",
            *growth,
        )
    return table


def live(items: Iterator[Sample], interval: float, board: str, keys: Any, stdout: Any = None) -> None:
    """Redraw in place until the samples end, ``q`` or Ctrl-C; the terminal as it was afterwards."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(file=stdout)  # None: sys.stdout
    with keys, _signals_quit(), Live(console=console, auto_refresh=False, transient=False) as screen:
        screen.update(Text(f"evl net: {board}: first sample, every {interval:g} s (q to quit)"), refresh=True)
        for sample in items:
            screen.update(view(sample.wall, sample.ports, interval, board), refresh=True)


class Quit(Exception):
    """``q`` was typed."""


class Signalled(Exception):
    """SIGTERM, SIGHUP or SIGQUIT came: the view ends as on ``q`` (the terminal restored), then the
    process exits as the signal asked (128 + its number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_quit() -> Iterator[None]:
    import signal

    def stop(signum: int, _frame: Any) -> None:
        raise Signalled(signum)

    wanted = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    saved = {sig: signal.signal(sig, stop) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class Keys:
    """The TTY in cbreak mode, no echo, while the view runs: ``q`` is read without Enter."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: Any = None

    def __enter__(self) -> Keys:
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def quit(self) -> bool:
        """Whether ``q`` (or the end of the terminal's input) is waiting; other keys are dropped."""
        import os
        import select

        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 64)
            if not data or b"q" in data or b"Q" in data:
                return True
        return False

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; Quit as soon as ``q`` is typed."""
        import select

        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if select.select([self.fd], [], [], left)[0] and self.quit():
                raise Quit
