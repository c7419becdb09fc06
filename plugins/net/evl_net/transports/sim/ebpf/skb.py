"""The skb a socket filter runs on: :class:`SkbContext` and the ``__sk_buff`` layout.

Everything the kernel derives from an RX frame before the program runs lives
here, so that the rest of the interpreter only sees a frame and a 192-byte
context image.  The kernel's view, checked in tests/test_ebpf_vm.py against
``BPF_PROG_TEST_RUN`` and its real RX path:

* The skb data starts after the 14-byte Ethernet header (``eth_type_trans()``
  pulled it), so ``__sk_buff.len`` is ``len(frame) - 14``.
* ``protocol`` and ``vlan_proto`` are ``__be16`` in the kernel: a program
  reads IPv4 as ``bpf_htons(0x0800)`` == 0x0008.  :class:`SkbContext` holds
  them in host order and :func:`ctx_image` presents them the kernel's way.
* A VLAN-accelerated NIC (or ``skb_vlan_untag()``) moves the outer
  802.1Q/802.1ad tag into ``vlan_present``/``vlan_tci``/``vlan_proto``:
  :meth:`SkbContext.for_frame` does that by default.  With a plain
  :class:`SkbContext` a tagged frame is seen as is (``protocol`` 0x8100),
  exactly as ``BPF_PROG_TEST_RUN`` shows it.
* Readable fields are those the kernel lets socket filters read, with its
  narrow-load rewriting (:data:`CTX_TARGET`); only cb[] is writable;
  data/data_end, tc_classid, the socket fields, tstamp, wire_len and
  hwtstamp are rejected (:func:`check_ctx_access`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .errors import RunError, UnsupportedError
from .isa import M32

ETH_HLEN = 14
CTX_SIZE = 192  # sizeof(struct __sk_buff)

PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3
_VLAN_TPIDS = (0x8100, 0x88A8)


def eth_type_trans(frame: bytes) -> int:
    """skb->protocol (host order) as the kernel's eth_type_trans() sets it."""
    proto = (frame[12] << 8) | frame[13]
    if proto >= 0x0600:  # eth_proto_is_802_3()
        return proto
    if frame[14:16] == b"\xff\xff":  # raw 802.3 (Novell IPX)
        return 0x0001  # ETH_P_802_3
    return 0x0004  # ETH_P_802_2


def pkt_type_of(frame: bytes, dev_addr: bytes | None = None) -> int:
    """skb->pkt_type from the destination MAC (eth_skb_pkt_type()).

    Without ``dev_addr`` every unicast frame is taken as addressed to us
    (the NIC filters the others out).  ff:ff:ff:ff:ff:ff is PACKET_BROADCAST
    as on an Ethernet NIC (BPF_PROG_TEST_RUN's loopback device has no
    broadcast address and calls it PACKET_MULTICAST).
    """
    dst = bytes(frame[0:6])
    if dev_addr is not None and dst == bytes(dev_addr):
        return PACKET_HOST
    if dst[0] & 1:
        return PACKET_BROADCAST if dst == b"\xff" * 6 else PACKET_MULTICAST
    return PACKET_HOST if dev_addr is None else PACKET_OTHERHOST


@dataclass(frozen=True)
class SkbContext:
    """The ``struct __sk_buff`` fields a socket filter can read.

    Fields left at None are derived from the frame on each run, the way
    the kernel derives them: ``len`` is len(frame) - 14, ``protocol`` comes
    from eth_type_trans(), ``pkt_type`` from the destination MAC compared
    with ``dev_addr`` (see :func:`pkt_type_of`).  ``protocol`` and
    ``vlan_proto`` are host-order ethertypes (0x0800, 0x8100): the program
    reads them as the kernel's ``__be16``.  ``vlan_offloaded`` means the
    frame handed to :meth:`Program.run` still carries the outer VLAN tag that
    ``vlan_tci`` describes and the program must not see it (set by
    :meth:`for_frame`).  ``socket_cookie`` is what bpf_get_socket_cookie()
    returns (no socket owns an RX skb: 0).
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
        cls, frame: bytes, *, vlan: int | None = None, vlan_offload: bool = True, **fields: Any
    ) -> SkbContext:
        """The context of ``frame`` received by a NIC, derived fields filled in.

        With ``vlan_offload`` (the default: a VLAN-accelerated NIC, or the
        core's skb_vlan_untag()), an outer 802.1Q/802.1ad tag in the frame
        moves to vlan_present/vlan_tci/vlan_proto and the program sees the
        frame without it.  ``vlan`` is a VLAN id the hardware already took
        out of an untagged ``frame``; for a tagged frame it must match the
        tag's VID.  Other keyword arguments set fields (ifindex=, mark=, ...).
        """
        if len(frame) < ETH_HLEN:
            raise ValueError(f"a {len(frame)}-byte frame has no Ethernet header")
        tpid = (frame[12] << 8) | frame[13]
        if vlan_offload and tpid in _VLAN_TPIDS and len(frame) >= ETH_HLEN + 4:
            tci = (frame[14] << 8) | frame[15]
            if vlan is not None and vlan != tci & 0x0FFF:
                raise ValueError(f"vlan={vlan} but the frame is tagged with VLAN {tci & 0x0FFF}")
            fields.setdefault("vlan_present", 1)
            fields.setdefault("vlan_tci", tci)
            fields.setdefault("vlan_proto", tpid)
            fields["vlan_offloaded"] = True
            frame = frame[:12] + frame[16:]
        elif vlan is not None:
            fields.setdefault("vlan_present", 1)
            fields.setdefault("vlan_tci", vlan)
            fields.setdefault("vlan_proto", 0x8100)
        if fields.get("len") is None:
            fields["len"] = len(frame) - ETH_HLEN
        if fields.get("protocol") is None:
            fields["protocol"] = eth_type_trans(frame)
        if fields.get("pkt_type") is None:
            fields["pkt_type"] = pkt_type_of(frame, fields.get("dev_addr"))
        return cls(**fields)


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
