"""``evl net-exporter``: the board's out-of-band network statistics for Prometheus, served at ``/metrics``.

Each scrape is one read of the board through the library API (every
interface's counters, as ``evl net -Q --all-interfaces`` reads them), turned
into the series of :data:`evl_net.engine.prometheus.METRICS` by a custom
collector of the official ``prometheus_client`` library, which also serves the
HTTP endpoint and the exporter's own process metrics.  A read that fails is
one line on stderr and one more ``evl_net_scrape_errors_total``: the scrape
still answers.  ``prometheus_client`` is imported here only, never by
``evl net``.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from evl_core.commands import Context
from evl_core.errors import EvlError, one_line, shown

DEFAULT_LISTEN = "127.0.0.1:9471"
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class Listen:
    """Where the exporter listens: an IP address (v4, or v6 without its brackets) and a TCP port."""

    host: str
    port: int
    family: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6): HOST an IP address, PORT in 1..65535."""
    import ipaddress
    import socket

    def bad(why: str) -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"invalid listen address '{shown(text)}': {why}")

    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise bad("expected [IPV6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise bad("expected HOST:PORT")
        if ":" in host:
            raise bad("an IPv6 address goes in brackets: [IPV6]:PORT")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise bad(f"'{shown(host)}' is not an IP address") from None
    if text.startswith("[") and address.version != 6:
        raise bad("brackets hold an IPv6 address")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise bad(f"the port must be a number in 1..65535, not '{shown(port)}'")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return Listen(host, int(port), family)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evl net-exporter",
        description="Serve the out-of-band network statistics of the board to Prometheus: every interface's "
        f"counters, pool and flags at http://HOST:PORT{METRICS_PATH}, one read of the board per scrape, with "
        "the exporter's own scrape and process metrics.",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=parse_listen,
        default=DEFAULT_LISTEN,
        help=f"the address and TCP port to serve on (default {DEFAULT_LISTEN}); HOST is an IP address, "
        "an IPv6 one in brackets ([::1]:9471); 0.0.0.0 or [::] for every interface",
    )
    board = parser.add_argument_group("the board")
    board.add_argument(
        "--transport",
        metavar="NAME",
        help="auto (default: ioctl when /dev/evl/net exists, else sim), sim, ioctl or remote; also EVL_NET_TRANSPORT",
    )
    board.add_argument("--board", metavar="BOARD", help="the simulated board (sim transport); also EVL_SIM_BOARD")
    board.add_argument(
        "--remote",
        metavar="[USER@]HOST[:PORT]",
        help="a board over SSH, read through its evl net-agent (one connection per scrape)",
    )
    board.add_argument("--ssh", metavar="OPTIONS", help="options for ssh (host-key checking cannot be weakened)")
    board.add_argument("--timeout", metavar="SECONDS", help="per request on a remote board (default 10)")
    return parser


# -- the collector -------------------------------------------------------------------------------------


@dataclass(eq=False)  # registered by identity
class BoardCollector:
    """A ``prometheus_client`` collector: each :meth:`collect` reads the board once through ``read``."""

    read: Callable[[], Iterable[Any]]
    log: Callable[[str], None]
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from evl_net.engine.prometheus import COUNTER, families

        with self.lock:  # one read at a time: concurrent scrapes queue (the simulator locks its state anyway)
            start = time.perf_counter()
            try:
                found = families(self.read())
            except EvlError as exc:
                found = self._failed(exc.said())
            except Exception as exc:  # noqa: BLE001 -- a scrape answers whatever the board did
                found = self._failed(f"internal error: {type(exc).__name__}: {one_line(str(exc))}")
            duration = time.perf_counter() - start
            errors = self.errors
        for family in found:
            kind = CounterMetricFamily if family.type == COUNTER else GaugeMetricFamily
            keys = [key for key, _value in family.samples[0][0]]
            metric = kind(family.name, family.help, labels=keys)
            for labels, value in family.samples:
                metric.add_metric([v for _k, v in labels], value)
            yield metric
        yield CounterMetricFamily(
            "evl_net_scrape_errors_total", "Reads of the board that failed since the exporter started.", value=errors
        )
        yield GaugeMetricFamily(
            "evl_net_scrape_duration_seconds", "How long this scrape's read of the board took.", value=duration
        )

    def _failed(self, message: str) -> list[Any]:
        self.errors += 1
        self.log(f"cannot read the board: {message}")
        return []


def reader(args: argparse.Namespace, env: dict[str, str]) -> Callable[[], Iterable[Any]]:
    """One read of the board: open it, query every interface, close it (a simulated board stays unlocked
    between scrapes, so ``evl net`` and ``evl sim`` run beside the exporter)."""
    from evl_net import api

    remote_options = {k: getattr(args, k) for k in ("ssh", "timeout") if getattr(args, k) is not None}

    def read() -> Iterable[Any]:
        with api.open_board(
            transport=args.transport or "auto",
            board=args.board,
            remote=args.remote,
            env=env,
            console=io.StringIO(),
            **remote_options,
        ) as board:
            return list(board.query_all().interfaces)

    return read


# -- serving -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, ctx: Context) -> int:
    """``evl net-exporter``: serve until SIGTERM or SIGINT (exit 0, even when one comes during start-up)."""
    import signal

    stop = threading.Event()

    def stopping(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        env = dict(ctx.env)
        what = _board_label(args, env)
        read = reader(args, env)
        if not args.remote:
            read()  # a local board that cannot be read at start is a setup error (a board name, a device): say so now
        out = _Log(ctx.prog, ctx.stderr)
        httpd = _server(args.listen, BoardCollector(read, out.line))
        thread = threading.Thread(target=httpd.serve_forever, name="evl-net-exporter", daemon=True)
        thread.start()
        try:
            out.line(f"serving http://{args.listen}{METRICS_PATH} ({what})")
            while not stop.wait(3600):
                pass
        finally:
            httpd.shutdown()  # returns once serve_forever has (it runs in the thread started above)
            httpd.server_close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.line("stopped")
    return 0


def _board_label(args: argparse.Namespace, env: dict[str, str]) -> str:
    """What the exporter reads, for its start-up line; a contradictory choice of board is an error here."""
    from evl_net.engine import select

    if args.remote:
        if args.transport not in (None, "auto", "remote"):
            raise EvlError(f"--remote needs the remote transport, not '{shown(args.transport)}'")
        if args.board:
            raise EvlError("--board names a simulated board; a remote board is the board itself")
        return f"remote board {args.remote}"
    for option in ("ssh", "timeout"):
        if getattr(args, option) is not None:
            raise EvlError(f"--{option} applies to a remote board only (--remote)")
    name, node = select.local_name(args.transport if args.transport not in (None, "auto") else None, env)
    if name == "remote":
        raise EvlError("the remote transport needs a board: --remote=[USER@]HOST[:PORT]")
    if node is not None and name == "sim":
        return f"the simulator: no {node} here"
    return f"transport {name}"


@dataclass
class _Log:
    """One line per event on stderr, from any thread."""

    prog: str
    stream: TextIO
    lock: threading.Lock = field(default_factory=threading.Lock)

    def line(self, message: str) -> None:
        with self.lock:
            try:
                self.stream.write(one_line(f"{self.prog}: {message}") + "\n")
                self.stream.flush()
            except (OSError, ValueError, EvlError):  # stderr gone (a closed journal): keep serving
                pass


def _server(listen: Listen, collector: BoardCollector) -> Any:
    """The HTTP server (not yet serving): ``/metrics`` from a registry holding the board's collector and the
    process's own, ``/`` a pointer to it, anything else 404."""
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, make_wsgi_app

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # a collector is anything with collect()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            return metrics(environ, start_response)
        if path == "/":
            body = f"evl net-exporter: the metrics are at {METRICS_PATH}\n".encode()
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"not found: the metrics are at {METRICS_PATH}\n".encode()]

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        address_family = listen.family
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that went away mid-answer: nothing to report, never a traceback

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log

    try:
        return make_server(listen.host, listen.port, app, Server, handler_class=Handler)
    except OSError as exc:
        raise EvlError.from_oserror(f"cannot listen on {listen}", exc) from None


def manpage_sections() -> list[tuple[str, str]]:
    """Extra sections of evl-net-exporter(8)."""
    from evl_net.engine.prometheus import METRICS

    rows = []
    seen: set[str] = set()
    for metric in METRICS:
        if metric.name in seen:
            continue
        seen.add(metric.name)
        own = dict.fromkeys(k for m in METRICS if m.name == metric.name for k, _v in m.labels)
        labels = "".join(f", {k}" for k in own)
        rows.append(f".TP\n\\fB{_roff(metric.name)}\\fR ({metric.type}; ifname{labels})\n{_roff(metric.help)}")
    return [
        (
            "METRICS",
            "\nEvery interface of the board gives these series, labelled with its name "
            "(the same as \\fBevl net \\-Q \\-\\-all\\-interfaces \\-\\-format=prometheus\\fR writes):\n"
            + "\n".join(rows)
            + r"""
.PP
And the exporter's own:
.TP
\fBevl_net_scrape_errors_total\fR (counter)
Reads of the board that failed since the exporter started; each is one line on stderr, and the scrape
still answers (without the board's series).
.TP
\fBevl_net_scrape_duration_seconds\fR (gauge)
How long this scrape's read of the board took.
.TP
\fBprocess_*\fR, \fBpython_info\fR
The exporter process's CPU time, memory, file descriptors and start time, and its Python.
""",
        ),
        (
            "SYSTEMD",
            r"""
\fIsystemd/evl\-net\-exporter.service\fR (installed under \fIshare/evl\-tools/systemd/\fR of the
installation's data directory) runs the exporter on 127.0.0.1:9471; copy it to
\fI/etc/systemd/system/\fR and \fBsystemctl enable \-\-now evl\-net\-exporter\fR.
SIGTERM and SIGINT stop the exporter cleanly.
""",
        ),
        (
            "EXIT STATUS",
            r"""
0 when stopped by SIGTERM or SIGINT;
1 when the address cannot be listened on (in use, not local, a privileged port) or the local board
cannot be read at start (a remote board is not read before the first scrape);
2 on a usage error (a bad \fB\-\-listen\fR).
""",
        ),
    ]


def _roff(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-")
