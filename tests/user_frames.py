"""Named Ethernet frames for the user-style filters of tests/bpf/users_*.c.

Built with ``struct`` only, independently of the project's own frame
builders, so that the kernel oracle (tests/kernel_bpf.py) and the project's
simulator can be compared on inputs neither of them produced.  IPv4 header
checksums are valid; UDP checksums are 0 (none), TCP checksums are 0 too
(no filter looks at them).

``FRAMES`` keeps insertion order: the per-source frames come last and use
more distinct IPv4 sources than the 4-entry LRU of users_lru_src.c holds.
"""

from __future__ import annotations

import struct

DST_MAC = bytes.fromhex("02000000aa01")
SRC_MAC = bytes.fromhex("02000000bb02")
DST_IP = bytes([192, 168, 1, 1])

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_EXPERIMENTAL = 0x88B5


def ip(addr: str) -> bytes:
    """Dotted quad to its 4 bytes."""
    return bytes(int(part) for part in addr.split("."))


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def eth(ethertype: int, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet header; ``tags`` are (TPID, TCI) pairs, outermost first, before ``ethertype``."""
    hdr = DST_MAC + SRC_MAC
    for tpid, tci in tags:
        hdr += struct.pack("!HH", tpid, tci)
    return hdr + struct.pack("!H", ethertype)


def ipv4(src: str, proto: int, payload: bytes, options: bytes = b"") -> bytes:
    """IPv4 header (IHL 5 + options, padded to 32 bits) with a valid checksum, then ``payload``."""
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0x1234, 0x4000, 64, proto, 0, ip(src), DST_IP)
    hdr += options
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def udp(dport: int, payload: bytes = b"evl-test", sport: int = 40000) -> bytes:
    """UDP header (checksum 0: none) and ``payload``."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(dport: int, sport: int = 40001) -> bytes:
    """A bare TCP SYN header (20 bytes, checksum left 0)."""
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 64240, 0, 0)


def arp_request() -> bytes:
    """ARP who-has 192.168.1.1 tell 192.168.1.10 (Ethernet/IPv4)."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, SRC_MAC, ip("192.168.1.10"), b"\0" * 6, DST_IP)
    return eth(ETH_P_ARP) + body


def ipv6_udp(dport: int) -> bytes:
    """IPv6 fe80::1 -> fe80::2 UDP (checksum 0: not valid for IPv6, no filter checks it)."""
    payload = udp(dport)
    src = bytes.fromhex("fe800000000000000000000000000001")
    dst = bytes.fromhex("fe800000000000000000000000000002")
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(payload), 17, 64, src, dst)
    return eth(ETH_P_IPV6) + hdr + payload


def _build() -> dict[str, bytes]:
    frames: dict[str, bytes] = {}
    frames["ipv4_udp_7000"] = eth(ETH_P_IP) + ipv4("192.168.1.10", 17, udp(7000))
    frames["ipv4_udp_53"] = eth(ETH_P_IP) + ipv4("192.168.1.10", 17, udp(53))
    frames["ipv4_tcp_80"] = eth(ETH_P_IP) + ipv4("192.168.1.11", 6, tcp(80))
    # IHL 6: one Router Alert option (RFC 2113), 4 bytes.
    frames["ipv4_opts_udp_7000"] = eth(ETH_P_IP) + ipv4("192.168.1.12", 17, udp(7000), options=b"\x94\x04\x00\x00")
    frames["arp"] = arp_request()
    frames["ipv6_udp_7000"] = ipv6_udp(7000)
    frames["vlan42_ipv4_udp_7000"] = eth(ETH_P_IP, ((ETH_P_8021Q, 42),)) + ipv4("192.168.1.13", 17, udp(7000))
    # Priority tag: VID 0, PCP 5.
    frames["vlan0_prio_ipv4_udp_7000"] = eth(ETH_P_IP, ((ETH_P_8021Q, 5 << 13),)) + ipv4("192.168.1.14", 17, udp(7000))
    frames["qinq_ipv4_udp_7000"] = eth(ETH_P_IP, ((ETH_P_8021AD, 100), (ETH_P_8021Q, 42))) + ipv4(
        "192.168.1.15", 17, udp(7000)
    )
    # Outer 802.1ad tag announcing an inner 802.1Q tag, of which only the TCI's 2 bytes arrive.
    frames["qinq_truncated"] = eth(ETH_P_8021AD) + struct.pack("!HH", 100, ETH_P_8021Q) + struct.pack("!H", 42)
    # Ethernet header only, announcing IPv4.  The kernel's BPF_PROG_TEST_RUN refuses it
    # (EINVAL): it wants a whole IPv4 header (20 bytes) behind ETH_P_IP, and 40 behind
    # ETH_P_IPV6 (upstream commit 12bec2bd4b76, "bpf: reject short IPv4/IPv6 inputs in
    # bpf_prog_test_run_skb", also in stable kernels).
    frames["runt_14"] = eth(ETH_P_IP)
    # Ethernet header only, with the IEEE local experimental ethertype: the kernel runs this
    # one, the filter sees an empty skb (len 0).
    frames["runt_14_experimental"] = eth(ETH_P_EXPERIMENTAL)
    # 802.1Q VID 42 announcing IPv4, then only 10 bytes of the IPv4 header: the short-header
    # path the kernel can test (skb->protocol is 0x8100, so no length check applies).
    frames["vlan42_ipv4_short"] = eth(ETH_P_IP, ((ETH_P_8021Q, 42),)) + ipv4("192.168.1.16", 17, udp(7000))[:10]
    for n in range(1, 7):
        frames[f"ipv4_src_10.0.0.{n}"] = eth(ETH_P_IP) + ipv4(f"10.0.0.{n}", 17, udp(7050))
    # 10.0.0.1 again, after the LRU overflow.
    frames["ipv4_src_10.0.0.1_again"] = frames["ipv4_src_10.0.0.1"]
    return frames


FRAMES: dict[str, bytes] = _build()


if __name__ == "__main__":
    for name, frame in FRAMES.items():
        print(f"{name:28} {len(frame):4}  {frame[12:24].hex()}")
