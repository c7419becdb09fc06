"""The skb a socket filter runs on: :class:`SkbContext` and the ``__sk_buff`` layout.

Everything the kernel derives from an RX frame before the program runs lives
here, so that the rest of the interpreter only sees a frame and a 192-byte
context image.

**Where the EVL RX hook runs** (docs/abi.md, "The skb at the RX hook").  The
program installed with ``evl net -F`` runs in ``__evl_net_filter_rx()``
(kernel/evl/net/dev.c, through ``bpf_prog_run_clear_cb()``), called by
``netif_deliver_oob()`` (kernel/evl/net/input.c), which Dovetail's
``netif_receive_oob()`` (net/core/dev.c) calls at the very top of
``netif_receive_skb()``, ``netif_receive_skb_list()``, ``netif_rx()`` and
``gro_receive_skb()`` (net/core/gro.c, before GRO and before
``skb_mark_napi_id()``), for a device with oob diversion on.  So the driver
has already run ``eth_type_trans()`` and the core's
``__netif_receive_skb_core()`` has not run yet.  The skb there, and what this
module gives a program:

* ``skb->data`` is at the byte after the 14-byte MAC header
  (``eth_type_trans()`` pulled it): the network header of an untagged frame,
  the TCI of a VLAN tag still in the data.  ``len`` is the frame's length
  less 14 (less 4 more for a tag the NIC stripped; no FCS).
* ``protocol`` is what ``eth_type_trans()`` read at offset 12 of the buffer
  the NIC handed over: 0x8100/0x88a8 for a tag still in the data.
  ``skb_vlan_untag()`` has *not* run (that is in
  ``__netif_receive_skb_core()``, after the hook), so a tag the NIC did not
  strip stays in the data, ``vlan_present`` 0.  A tag the NIC stripped
  (``NETIF_F_HW_VLAN_CTAG_RX``, ``..._STAG_RX``) is in ``vlan_tci`` (the
  whole TCI, PCP and DEI included), ``vlan_proto`` (its TPID) and
  ``vlan_present`` 1.  Only the outer tag is ever stripped; the kernel reads
  ``vlan_proto`` 0 when there is no tag.
* ``protocol`` and ``vlan_proto`` are ``__be16`` in the kernel: a program
  reads IPv4 as ``bpf_htons(0x0800)`` == 0x0008.  :class:`SkbContext` holds
  them in host order and :func:`ctx_image` presents them the kernel's way.
* ``pkt_type`` is ``eth_type_trans()``'s: PACKET_HOST for our MAC,
  PACKET_BROADCAST for ff:ff:ff:ff:ff:ff, PACKET_MULTICAST for the group
  bit, PACKET_OTHERHOST otherwise (a promiscuous NIC).
* ``ifindex`` is the real (physical) device's: the hook runs before
  ``vlan_do_receive()``, and ``evl_net_filter_rx()`` refuses VLAN devices.
  ``ingress_ifindex`` (``skb->skb_iif``) is 0: only
  ``__netif_receive_skb_core()`` sets it.
* ``mark``, ``priority``, ``tc_index`` are 0 (no netfilter, tc, nor
  ``vlan_do_receive()`` yet); ``napi_id`` reads 0 (``gro_receive_skb()``
  marks it after the hook, and the kernel hides ids below MIN_NAPI_ID);
  ``gso_segs``/``gso_size`` are 0 (GRO is bypassed); cb[] is zero
  (``bpf_prog_run_clear_cb()``).
* Driver-dependent, 0 by default here: ``hash`` (the NIC's RSS hash with
  NETIF_F_RXHASH, ``skb_set_hash()``), ``queue_mapping`` (rx queue + 1 when
  the driver calls ``skb_record_rx_queue()``; 0 when it does not).
* Readable fields are those the kernel lets socket filters read, with its
  narrow-load rewriting (:data:`CTX_TARGET`); only cb[] is writable;
  data/data_end, tc_classid, the socket fields, tstamp, wire_len and
  hwtstamp are rejected (:func:`check_ctx_access`).

:meth:`SkbContext.for_frame` builds that context (by default for a NIC that
strips an outer 802.1Q or 802.1ad tag); a plain :class:`SkbContext` is the
view of ``BPF_PROG_TEST_RUN`` (``eth_type_trans()`` on the loopback device,
tags left in the data), against which tests/test_ebpf_vm.py and
tests/test_ebpf_rx_hook.py check the interpreter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from .errors import RunError, UnsupportedError
from .isa import M32

ETH_HLEN = 14
CTX_SIZE = 192  # sizeof(struct __sk_buff)

PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3
_VLAN_TPIDS = (0x8100, 0x88A8)
_BROADCAST = b"\xff" * 6


def eth_type_trans(frame: bytes) -> int:
    """skb->protocol (host order) as the kernel's eth_type_trans() sets it."""
    return _eth_type_at(frame, 12)


def _eth_type_at(frame: bytes, at: int) -> int:
    """eth_type_trans() on a frame whose ethertype is at ``at`` (16 past a tag the NIC stripped)."""
    proto = (frame[at] << 8) | frame[at + 1]
    if proto >= 0x0600:  # eth_proto_is_802_3()
        return proto
    if frame[at + 2 : at + 4] == b"\xff\xff":  # raw 802.3 (Novell IPX)
        return 0x0001  # ETH_P_802_3
    return 0x0004  # ETH_P_802_2


def pkt_type_of(frame: bytes, dev_addr: bytes | None = None) -> int:
    """skb->pkt_type from the destination MAC (eth_skb_pkt_type()).

    Without ``dev_addr`` every unicast frame is taken as addressed to us
    (the NIC filters the others out).  ff:ff:ff:ff:ff:ff is PACKET_BROADCAST
    as on an Ethernet NIC (BPF_PROG_TEST_RUN's loopback device has no
    broadcast address and calls it PACKET_MULTICAST).
    """
    if dev_addr is None and not frame[0] & 1:  # the common case, first: unicast, taken as ours
        return PACKET_HOST
    dst = bytes(frame[0:6])
    if dev_addr is not None and dst == bytes(dev_addr):
        return PACKET_HOST
    if dst[0] & 1:
        return PACKET_BROADCAST if dst == _BROADCAST else PACKET_MULTICAST
    return PACKET_HOST if dev_addr is None else PACKET_OTHERHOST


@dataclass(frozen=True)
class SkbContext:
    """The ``struct __sk_buff`` fields a socket filter can read, at the EVL RX hook.

    The values are those the skb has when ``netif_deliver_oob()`` runs the
    device's program (module docstring): after the driver's
    eth_type_trans(), before the core's skb_vlan_untag() and
    ``__netif_receive_skb_core()``.  Fields left at None are derived from the
    frame on each run, the way the kernel derives them: ``len`` is
    len(frame) - 14, ``protocol`` comes from eth_type_trans(), ``pkt_type``
    from the destination MAC compared with ``dev_addr`` (see
    :func:`pkt_type_of`).  ``protocol`` and ``vlan_proto`` are host-order
    ethertypes (0x0800, 0x8100): the program reads them as the kernel's
    ``__be16``.  ``ifindex`` is the real device's; ``ingress_ifindex``,
    ``mark``, ``priority``, ``tc_index``, ``napi_id``, the gso fields and cb[]
    are 0 there; ``hash`` and ``queue_mapping`` are what the driver set (0
    when it sets nothing).  ``vlan_offloaded`` means the frame handed to
    :meth:`Program.run` still carries the outer VLAN tag that ``vlan_tci``
    describes and the program must not see it, because the NIC stripped it
    (set by :meth:`for_frame`).  ``socket_cookie`` is what
    bpf_get_socket_cookie() returns (no socket owns an RX skb: 0).

    A plain ``SkbContext()`` leaves VLAN tags in the data, as
    ``BPF_PROG_TEST_RUN`` and a NIC without VLAN stripping do.
    """

    len: int | None = None
    pkt_type: int | None = None
    mark: int = 0
    queue_mapping: int = 0
    protocol: int | None = None
    vlan_present: int = 0
    vlan_tci: int = 0
    vlan_proto: int = 0
    priority: int = 0
    ingress_ifindex: int = 0
    ifindex: int = 0
    tc_index: int = 0
    cb: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    hash: int = 0
    napi_id: int = 0
    gso_segs: int = 0
    gso_size: int = 0
    dev_addr: bytes | None = None
    socket_cookie: int = 0
    vlan_offloaded: bool = False

    @classmethod
    def for_frame(
        cls,
        frame: bytes,
        *,
        vlan: int | None = None,
        vlan_offload: bool = True,
        stag_offload: bool = True,
        rx_queue: int | None = None,
        **fields: Any,
    ) -> SkbContext:
        """The context the EVL RX hook gives the program for ``frame``, as a NIC received it.

        ``frame`` is the frame on the wire (without FCS).  ``vlan_offload``
        says that the NIC strips VLAN tags on RX (NETIF_F_HW_VLAN_CTAG_RX, the
        default), ``stag_offload`` that it strips 802.1ad (0x88a8) outer tags
        too (NETIF_F_HW_VLAN_STAG_RX; ignored without ``vlan_offload``).  A
        stripped outer tag moves to vlan_present/vlan_tci/vlan_proto and the
        program sees the frame without it: ``protocol`` is then the inner
        ethertype (0x8100 for QinQ) and ``len`` 4 bytes shorter.  Any other
        tag stays in the data, as at the hook nothing else untags it:
        ``protocol`` 0x8100/0x88a8, ``vlan_present`` 0, skb->data at the TCI.

        ``vlan`` is a VLAN id the NIC already took out of an untagged
        ``frame`` (vlan_tci = vlan, vlan_proto 0x8100); for a frame whose
        outer tag the NIC strips it must match that tag's VID, and it is an
        error when the tag stays in the data.  ``rx_queue`` is the NIC's RX
        queue for a driver that calls skb_record_rx_queue():
        ``queue_mapping`` is then rx_queue + 1 (None: 0, as for a driver that
        does not).  Other keyword arguments set fields (ifindex=, hash=,
        mark=, ...): ``ifindex`` should be the real device's.
        """
        n = len(frame)
        if n < ETH_HLEN:
            raise ValueError(f"a {n}-byte frame has no Ethernet header")
        tpid = (frame[12] << 8) | frame[13]
        tagged = tpid in _VLAN_TPIDS and n >= ETH_HLEN + 4
        strips = vlan_offload and (tpid == 0x8100 or (tpid == 0x88A8 and stag_offload))
        at = 12  # where eth_type_trans() reads, in the frame the program sees
        if tagged and strips:
            tci = (frame[14] << 8) | frame[15]
            if vlan is not None and vlan != tci & 0x0FFF:
                raise ValueError(f"vlan={vlan} but the frame is tagged with VLAN {tci & 0x0FFF}")
            fields.setdefault("vlan_present", 1)
            fields.setdefault("vlan_tci", tci)
            fields.setdefault("vlan_proto", tpid)
            fields["vlan_offloaded"] = True
            n -= 4  # the program sees the frame without the tag (frame[:12] + frame[16:]), not copied here
            at = 16
        elif vlan is not None:
            if tagged:
                raise ValueError(
                    f"vlan={vlan} names a tag the NIC stripped, but this NIC leaves the frame's "
                    f"{tpid:#06x} tag in the data"
                )
            fields.setdefault("vlan_present", 1)
            fields.setdefault("vlan_tci", vlan)
            fields.setdefault("vlan_proto", 0x8100)
        if rx_queue is not None:
            fields.setdefault("queue_mapping", rx_queue + 1)
        if fields.get("len") is None:
            fields["len"] = n - ETH_HLEN
        if fields.get("protocol") is None:
            fields["protocol"] = _eth_type_at(frame, at)
        if fields.get("pkt_type") is None:
            fields["pkt_type"] = pkt_type_of(frame, fields.get("dev_addr"))
        if cls is not SkbContext or not _FIELD_NAMES.issuperset(fields):
            return cls(**fields)  # a subclass, or a TypeError naming the unknown field
        # What the frozen dataclass's __init__ does, without its object.__setattr__ call per field
        # (two thirds of the cost of a context, which the simulator builds for every frame).
        skb = object.__new__(cls)
        skb.__dict__.update(_DEFAULTS, **fields)
        return skb


#: Every field of a context and its default, for :meth:`SkbContext.for_frame`.
_DEFAULTS = {f.name: f.default for f in dataclass_fields(SkbContext)}
_FIELD_NAMES = frozenset(_DEFAULTS)


#: Context layout: offset -> name of the u32 fields socket filters read.
CTX_FIELDS = {
    0: "len",
    4: "pkt_type",
    8: "mark",
    12: "queue_mapping",
    16: "protocol",
    20: "vlan_present",
    24: "vlan_tci",
    28: "vlan_proto",
    32: "priority",
    36: "ingress_ifindex",
    40: "ifindex",
    44: "tc_index",
    68: "hash",
    84: "napi_id",
    164: "gso_segs",
    176: "gso_size",
}
#: Size of the sk_buff member behind each field (the verifier's "target size"):
#: a narrow read smaller than it is shifted and masked out of the field, a
#: read at least that wide returns the whole member, whatever its offset in
#: the 4-byte slot (a 2-byte read of protocol at +2 gives the protocol).
CTX_TARGET = {
    0: 4,
    4: 1,
    8: 4,
    12: 2,
    16: 2,
    20: 4,
    24: 2,
    28: 2,
    32: 4,
    36: 4,
    40: 4,
    44: 2,
    68: 4,
    84: 4,
    164: 2,
    176: 2,
}
#: cb[]: plain memory, readable and writable.
CB_LO, CB_HI = 48, 68
_CTX_FORBIDDEN = [
    (72, 76, "tc_classid"),
    (76, 80, "data"),
    (80, 84, "data_end"),
    (88, 140, "socket fields (family, ip, port)"),
    (140, 144, "data_meta"),
    (144, 152, "flow_keys"),
    (152, 160, "tstamp"),
    (160, 164, "wire_len"),
    (180, 184, "tstamp_type"),
    (184, 192, "hwtstamp"),
]
_CTX_STRUCT = struct.Struct("<12I20sI12xI76xI8xI")  # len..tc_index, cb, hash, napi_id, gso_segs, gso_size


def ctx_field_name(off: int) -> str:
    """The ``__sk_buff`` field at byte offset ``off``, for messages."""
    base = off & ~3
    if base in CTX_FIELDS:
        return CTX_FIELDS[base]
    if CB_LO <= off < CB_HI:
        return f"cb[{(off - CB_LO) // 4}]"
    if 168 <= off < 176:
        return "sk"
    for lo, hi, name in _CTX_FORBIDDEN:
        if lo <= off < hi:
            return name
    return f"offset {off}"


def check_ctx_access(pc: int, off: int, size: int, write: bool) -> None:
    """Refuse (:class:`RunError`) a context access a socket filter may not make."""
    name = ctx_field_name(off)
    if off % size:
        raise RunError(pc, f"misaligned context access: {size} bytes at offset {off} ({name})")
    if CB_LO <= off < CB_HI:
        if off + size > CB_HI:
            raise RunError(pc, f"context access of {size} bytes at offset {off} overruns cb[]")
        return
    if 168 <= off < 176:
        raise RunError(pc, "skb->sk (struct bpf_sock) is not supported by the simulator", UnsupportedError)
    if (off & ~3) not in CTX_FIELDS:
        raise RunError(pc, f"__sk_buff field {name} is not accessible to socket filters")
    if size > 4:
        raise RunError(pc, f"{size}-byte read of the 4-byte __sk_buff field {name}")
    if write:
        raise RunError(pc, f"__sk_buff field {name} is read-only for socket filters (only cb[] is writable)")


def ctx_image(skb: SkbContext, frame: bytes) -> bytearray:
    """The 192-byte __sk_buff as the program sees it."""
    n = len(frame) - ETH_HLEN
    length = n if skb.len is None else skb.len
    proto = eth_type_trans(frame) if skb.protocol is None else skb.protocol
    pkt_type = pkt_type_of(frame, skb.dev_addr) if skb.pkt_type is None else skb.pkt_type
    cb = b"".join((v & M32).to_bytes(4, "little") for v in skb.cb)
    if len(cb) != 20:
        raise ValueError("SkbContext.cb must have 5 entries")
    image = bytearray(CTX_SIZE)
    _CTX_STRUCT.pack_into(
        image,
        0,
        length & M32,
        pkt_type & 7,
        skb.mark & M32,
        skb.queue_mapping & 0xFFFF,
        _bswap16(proto & 0xFFFF),
        1 if skb.vlan_present else 0,
        skb.vlan_tci & 0xFFFF,
        _bswap16(skb.vlan_proto & 0xFFFF),
        skb.priority & M32,
        skb.ingress_ifindex & M32,
        skb.ifindex & M32,
        skb.tc_index & 0xFFFF,
        cb,
        skb.hash & M32,
        skb.napi_id & M32,
        skb.gso_segs & 0xFFFF,
        skb.gso_size & 0xFFFF,
    )
    return image


def _bswap16(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


# The u32 slot of each read-only field as ctx_image() packs it, as a Python expression of the skb and
# the frame the program sees (written {skb} and {frame}).
_SLOTS = {
    0: "(len({frame}) - 14 if {skb}.len is None else {skb}.len) & 0xFFFFFFFF",
    4: "(_pkt_type_of({frame}, {skb}.dev_addr) if {skb}.pkt_type is None else {skb}.pkt_type) & 7",
    8: "{skb}.mark & 0xFFFFFFFF",
    12: "{skb}.queue_mapping & 0xFFFF",
    16: "_bswap16((_eth_type_trans({frame}) if {skb}.protocol is None else {skb}.protocol) & 0xFFFF)",
    20: "(1 if {skb}.vlan_present else 0)",
    24: "{skb}.vlan_tci & 0xFFFF",
    28: "_bswap16({skb}.vlan_proto & 0xFFFF)",
    32: "{skb}.priority & 0xFFFFFFFF",
    36: "{skb}.ingress_ifindex & 0xFFFFFFFF",
    40: "{skb}.ifindex & 0xFFFFFFFF",
    44: "{skb}.tc_index & 0xFFFF",
    68: "{skb}.hash & 0xFFFFFFFF",
    84: "{skb}.napi_id & 0xFFFFFFFF",
    164: "{skb}.gso_segs & 0xFFFF",
    176: "{skb}.gso_size & 0xFFFF",
}
#: The names those expressions use, for the namespace they are evaluated in.
CTX_READ_GLOBALS = {"len": len, "_pkt_type_of": pkt_type_of, "_eth_type_trans": eth_type_trans, "_bswap16": _bswap16}


def ctx_read(off: int, size: int, skb: str, frame: str) -> str | None:
    """A Python expression of the ``size``-byte read at context offset ``off``, or None.

    For the accesses :func:`check_ctx_access` allows to the read-only fields
    (not cb[], which a program may write): what :func:`~.memory.load` returns
    there, computed from the expressions ``skb`` (the :class:`SkbContext`) and
    ``frame`` (the frame the program sees) instead of the context image.
    Those fields never change during a run, so the code generator writes a
    load from the context pointer as this expression (tests/test_ebpf_fast_paths.py
    checks every one against the image); the names it uses are in
    :data:`CTX_READ_GLOBALS`.
    """
    base = off & ~3
    slot = _SLOTS.get(base)
    if slot is None or size not in (1, 2, 4) or off % size:
        return None
    expr = slot.format(skb=skb, frame=frame)
    if size < CTX_TARGET[base]:  # a narrow load: shifted and masked out of the field
        return f"(({expr}) >> {(off & 3) * 8}) & {(1 << (size * 8)) - 1:#x}"
    return f"({expr})"
