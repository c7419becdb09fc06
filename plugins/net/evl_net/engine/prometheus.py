"""``-Q`` results as Prometheus metrics: the one table of metric definitions, and the text exposition format.

:data:`METRICS` says which series a port gives: the sample name, its type, its
help, the :class:`~evl_net.model.DevStat` field it reads and its own labels
(``evl_net_nomem_total`` is one family with a series per direction).  Both
``--format=prometheus`` (:func:`render`, through :func:`exposition`) and
``evl net-exporter`` (its collector, through :func:`families`) are built on
it, so a file written by a timer and a scrape of the exporter name and type
every series alike.

The text written follows the Prometheus text exposition format (version
0.0.4): one ``# HELP`` and one ``# TYPE`` line per family, naming the family
by its sample name (a counter's ``_total`` included, as the format's own
example ``# TYPE http_requests_total counter`` does), then its samples, every
family's lines together; label values escaped (``\\\\``, ``\\"``, ``\\n``), help
text too (``\\\\``, ``\\n``).  Values are written as integers, exactly.

Nothing here imports ``prometheus_client``: the formatter costs ``evl net`` no
start-up time.
"""

from __future__ import annotations

from evl_core.errors import EvlError, shown
from evl_core.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from typing import Any, Protocol

    import evl_net.model

    class PortRecord(Protocol):
        """What a port record offers: ``-Q``'s PortStatus and ``-Q --all-interfaces``' InterfaceStat rows."""

        @property
        def ifname(self) -> str: ...

        @property
        def stat(self) -> evl_net.model.DevStat | None: ...


COUNTER = "counter"
GAUGE = "gauge"


@record(frozen=True)
class Metric:
    """One series of a port: ``name`` (the sample name), ``type``, ``help``, the DevStat ``field`` it reads,
    and the labels of its own (beside ``ifname`` and the caller's)."""

    name: str
    type: str
    help: str
    field: str
    labels: tuple[tuple[str, str], ...] = ()


#: Every series a port gives, in the order they are written; rows of one family are adjacent.
METRICS: tuple[Metric, ...] = (
    Metric("evl_net_rx_packets_total", COUNTER, "Packets received out-of-band on the port.", "rx_packets"),
    Metric("evl_net_rx_bytes_total", COUNTER, "Bytes received out-of-band on the port.", "rx_bytes"),
    Metric("evl_net_tx_packets_total", COUNTER, "Packets sent out-of-band from the port.", "tx_packets"),
    Metric("evl_net_tx_bytes_total", COUNTER, "Bytes sent out-of-band from the port.", "tx_bytes"),
    Metric("evl_net_pool_buffers_free", GAUGE, "Free buffers in the device's out-of-band pool.", "skb_free"),
    Metric("evl_net_pool_buffers", GAUGE, "Buffers in the device's out-of-band pool.", "skb_total"),
    Metric("evl_net_buffer_size_bytes", GAUGE, "Size of one buffer of the out-of-band pool.", "skb_size"),
    Metric("evl_net_csum_errors_total", COUNTER, "Frames received with a bad checksum.", "csum_errors"),
    Metric(
        "evl_net_nomem_total",
        COUNTER,
        "Frames dropped for want of a free pool buffer, by direction.",
        "rx_nomem",
        (("direction", "rx"),),
    ),
    Metric(
        "evl_net_nomem_total",
        COUNTER,
        "Frames dropped for want of a free pool buffer, by direction.",
        "tx_nomem",
        (("direction", "tx"),),
    ),
    Metric("evl_net_oob_capable", GAUGE, "1 if the device's driver is out-of-band capable, else 0.", "oob_capable"),
    Metric("evl_net_port_enabled", GAUGE, "1 if the device is an out-of-band port, else 0.", "oob_port"),
)

#: The labels every series of a port has; extra labels may not take these names.
PORT_LABELS = frozenset({"ifname", *(name for m in METRICS for name, _v in m.labels)})
#: The text format's content type (what ``node_exporter`` and ``prometheus_client`` serve).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@record(frozen=True)
class Family:
    """One metric family, ready to write: its name, type, help and samples (labels, value)."""

    name: str
    type: str
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], int], ...]


def families(ports: Iterable[PortRecord], labels: Mapping[str, str] | None = None) -> list[Family]:
    """The families :data:`METRICS` gives for ``ports`` (a row without counters, a read that failed, has none),
    each sample labelled with ``labels`` first (e.g. ``board``), then ``ifname`` and its own.  Families with
    no sample are left out."""
    extra = tuple((key, _utf8(value)) for key, value in _extra_labels(labels))
    # names are made UTF-8 here, for every writer (prometheus_client refuses a lone surrogate)
    rows = [(_utf8(port.ifname), port.stat) for port in ports if port.stat is not None]
    out: list[Family] = []
    for name, metrics in _grouped(METRICS):
        samples = tuple(
            ((*extra, ("ifname", ifname), *metric.labels), _value(getattr(stat, metric.field)))
            for ifname, stat in rows
            for metric in metrics
        )
        if samples:
            out.append(Family(name, metrics[0].type, metrics[0].help, samples))
    return out


def exposition(ports: Iterable[PortRecord], labels: Mapping[str, str] | None = None) -> str:
    """``ports`` in the text exposition format (see :func:`families`)."""
    return text_of(families(ports, labels))


def text_of(found: Iterable[Family]) -> str:
    """Families in the text exposition format: HELP, TYPE, then the samples, family by family."""
    lines: list[str] = []
    for family in found:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample_labels, value in family.samples:
            text = ",".join(f'{key}="{escape_label(val)}"' for key, val in sample_labels)
            lines.append(f"{family.name}{{{text}}} {value}")
    return "".join(line + "\n" for line in lines)


def render(result: Any, request: Any) -> str | None:
    """The ``prometheus`` formatter: a ``-Q`` result (one port, or every interface), else None.

    Every metric of the port is written, whatever ``-Q`` modifiers select."""
    if getattr(result, "action", None) != "query":
        return None
    rows = getattr(result, "interfaces", None)
    if isinstance(rows, list):  # -Q --all-interfaces
        return exposition(rows)
    from evl_net.model import DevStat

    if isinstance(getattr(result, "stat", None), DevStat) and isinstance(getattr(result, "ifname", None), str):
        return exposition([result])
    return None


def escape_label(value: str) -> str:
    r"""A label value as the format writes it: ``\`` ``"`` and line feed escaped; a byte that was not UTF-8
    (a lone surrogate of :func:`os.fsdecode`) written as the text ``\xNN``, so the output stays UTF-8."""
    return _utf8(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    r"""Help text as the format writes it: ``\`` and line feed escaped."""
    return _utf8(text).replace("\\", "\\\\").replace("\n", "\\n")


def _utf8(text: str) -> str:
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return "".join(f"\\x{ord(ch) - 0xDC00:02x}" if "\udc80" <= ch <= "\udcff" else ch for ch in text)


def _value(value: Any) -> int:
    return int(value)  # bools (oob_capable, oob_port) are 0 or 1


def _grouped(metrics: Sequence[Metric]) -> Iterator[tuple[str, list[Metric]]]:
    group: list[Metric] = []
    for metric in metrics:
        if group and group[0].name != metric.name:
            yield group[0].name, group
            group = []
        group.append(metric)
    if group:
        yield group[0].name, group


def _extra_labels(labels: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in (labels or {}).items():
        # [a-zA-Z_][a-zA-Z0-9_]*, the format's label names, less the reserved __ prefix
        if not isinstance(key, str) or not (key.isascii() and key.isidentifier()) or key.startswith("__"):
            raise EvlError(f"invalid Prometheus label name '{shown(str(key))}'")
        if key in PORT_LABELS:
            raise EvlError(f"the Prometheus label '{key}' is the metrics' own ({', '.join(sorted(PORT_LABELS))})")
        if not isinstance(value, str):
            raise EvlError(f"the Prometheus label '{key}' needs a string value, not {type(value).__name__}")
        out.append((key, value))
    return tuple(out)
