"""Ethernet frames for the simulator's traffic model: build them, describe them, read pcaps."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_HLEN = 14
PROTOCOLS = {"udp": 17, "tcp": 6, "icmp": 1}


@dataclass(frozen=True)
class FrameSpec:
    """What to inject: the fields users think in, turned into real bytes by :func:`build`."""

    proto: str = "udp"  # udp, tcp, icmp (IPv4), arp, ipv6
    vlan: int | None = None
    size: int = 64  # whole frame, Ethernet header included, no FCS
    src: str = "10.10.10.10"
    dst: str = "10.10.10.11"
    sport: int = 4000
    dport: int = 5000
    bad_csum: bool = False
    dst_mac: str = "50:2d:f4:1d:32:d0"
    src_mac: str = "50:2d:f4:1d:40:10"


#: Frame sizes accepted (the Ethernet header included, no FCS): a header at least, a jumbo-sized IP datagram at most.
SIZE_MIN = ETH_HLEN
SIZE_MAX = 65535
PORT_MAX = 65535


def check(spec: FrameSpec) -> None:
    """ValueError naming the first field of ``spec`` that no real frame could have."""
    import ipaddress

    if spec.proto not in ("udp", "tcp", "icmp", "arp", "ipv6"):
        raise ValueError(f"proto: unknown protocol {spec.proto!r} (udp, tcp, icmp, arp or ipv6)")
    if spec.vlan is not None and (type(spec.vlan) is not int or not 0 <= spec.vlan <= 4095):
        raise ValueError(f"vlan: expected a VLAN id in 0..4095, got {spec.vlan!r}")
    if type(spec.size) is not int or not SIZE_MIN <= spec.size <= SIZE_MAX:
        raise ValueError(f"size: expected {SIZE_MIN}..{SIZE_MAX} bytes, got {spec.size!r}")
    for name in ("sport", "dport"):
        value = getattr(spec, name)
        if type(value) is not int or not 0 <= value <= PORT_MAX:
            raise ValueError(f"{name}: expected a port in 0..{PORT_MAX}, got {value!r}")
    for name in ("src", "dst"):
        value = getattr(spec, name)
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{name}: not an IPv4 address: {value!r}") from None
    for name in ("src_mac", "dst_mac"):
        value = getattr(spec, name)
        parts = value.split(":") if isinstance(value, str) else []
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
            raise ValueError(f"{name}: not a MAC address: {value!r}")
    if type(spec.bad_csum) is not bool:
        raise ValueError(f"bad_csum: expected true or false, got {spec.bad_csum!r}")


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def _ip(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build(spec: FrameSpec) -> bytes:
    """A well-formed frame of ``spec.size`` bytes (padded as needed)."""
    header = _mac(spec.dst_mac) + _mac(spec.src_mac)
    if spec.vlan is not None:
        header += struct.pack("!HH", ETH_P_8021Q, spec.vlan & 0x0FFF)
    if spec.proto == "arp":
        ethertype = ETH_P_ARP
        payload = (
            struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + _mac(spec.src_mac) + _ip(spec.src) + bytes(6) + _ip(spec.dst)
        )
    elif spec.proto == "ipv6":
        ethertype = ETH_P_IPV6
        payload = (
            struct.pack("!IHBB", 6 << 28, 8, 17, 64)
            + bytes(15)
            + b"\1"
            + bytes(15)
            + b"\2"
            + struct.pack("!HHHH", spec.sport, spec.dport, 8, 0)
        )
    else:
        ethertype = ETH_P_IP
        payload = _ipv4(spec, len(header) + 2)
    frame = header + struct.pack("!H", ethertype) + payload
    if len(frame) < spec.size:
        frame += bytes(spec.size - len(frame))
    return frame


def _ipv4(spec: FrameSpec, l2_len: int) -> bytes:
    proto = PROTOCOLS[spec.proto]
    total = max(spec.size - l2_len, 28)
    body_len = total - 20
    if proto == 17:
        body = bytearray(struct.pack("!HHHH", spec.sport, spec.dport, body_len, 0) + bytes(body_len - 8))
        pseudo = _ip(spec.src) + _ip(spec.dst) + struct.pack("!BBH", 0, 17, body_len)
        csum = _checksum(pseudo + bytes(body)) or 0xFFFF
        if spec.bad_csum:
            csum ^= 0x5A5A
        body[6:8] = struct.pack("!H", csum)
    elif proto == 6:
        tcp = struct.pack("!HHIIBBHHH", spec.sport, spec.dport, 0, 0, 5 << 4, 2, 1024, 0, 0)
        body = bytearray(tcp + bytes(max(body_len - 20, 0)))
    else:
        body = bytearray(struct.pack("!BBHHH", 8, 0, 0, 1, 1) + bytes(max(body_len - 8, 0)))
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, proto, 0, _ip(spec.src), _ip(spec.dst)))
    header[10:12] = struct.pack("!H", _checksum(bytes(header)))
    return bytes(header) + bytes(body)


@dataclass(frozen=True)
class FrameInfo:
    """What the EVL input path looks at in a frame."""

    vlan: int | None
    ethertype: int
    ipv4: bool
    udp: bool
    udp_csum_ok: bool


def inspect(frame: bytes) -> FrameInfo:
    vlan = None
    offset = 12
    if len(frame) < ETH_HLEN:
        return FrameInfo(None, 0, False, False, True)
    ethertype = struct.unpack_from("!H", frame, offset)[0]
    while ethertype in (ETH_P_8021Q, ETH_P_8021AD) and len(frame) >= offset + 6:
        tci = struct.unpack_from("!H", frame, offset + 2)[0]
        vlan = tci & 0x0FFF if vlan is None else vlan  # the outer tag selects the VLAN
        offset += 4
        ethertype = struct.unpack_from("!H", frame, offset)[0]
    l3 = offset + 2
    ipv4 = ethertype == ETH_P_IP and len(frame) >= l3 + 20 and frame[l3] >> 4 == 4
    udp, csum_ok = False, True
    if ipv4:
        ihl = (frame[l3] & 0x0F) * 4
        udp = frame[l3 + 9] == 17 and len(frame) >= l3 + ihl + 8
        if udp:
            total = struct.unpack_from("!H", frame, l3 + 2)[0]
            seg = frame[l3 + ihl : l3 + total]
            if len(seg) >= 8 and struct.unpack_from("!H", seg, 6)[0] != 0:
                pseudo = frame[l3 + 12 : l3 + 20] + struct.pack("!BBH", 0, 17, len(seg))
                csum_ok = _checksum(pseudo + seg) == 0
    return FrameInfo(vlan, ethertype, ipv4, udp, csum_ok)


def read_pcap(data: bytes) -> Iterator[bytes]:
    """Frames of a classic libpcap file (Ethernet link type), either byte order."""
    if len(data) < 24:
        raise ValueError("not a pcap file: too short")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        raise ValueError("a pcapng file, which is not supported: convert it with editcap -F pcap")
    else:
        raise ValueError("not a pcap file (no pcap magic number)")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    if linktype != 1:
        raise ValueError(f"pcap link type {linktype} is not Ethernet")
    offset = 24
    while offset + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, offset + 8)[0]
        offset += 16
        if offset + incl > len(data):
            raise ValueError("truncated pcap record")
        yield data[offset : offset + incl]
        offset += incl


def write_pcap(frames: list[bytes]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, frame in enumerate(frames):
        out.append(struct.pack("<IIII", i, 0, len(frame), len(frame)) + frame)
    return b"".join(out)
