"""The ``__sk_buff`` a filter installed with ``evl net -F`` reads at the EVL RX hook.

Where the hook runs and what the skb holds there is in docs/abi.md, "The skb
at the RX hook", and in the docstring of evl_net.transports.sim.ebpf.skb. In
short: after the driver's eth_type_trans() and before the core's
skb_vlan_untag(), on the real device.  The tables below were worked out by
hand from those facts and the frames' bytes, not taken from the code.  Each
field is read by a real eBPF program (one context load, returned as the
verdict) run by the simulator's interpreter.  Where it can, the machine's
kernel checks the same programs: BPF_PROG_TEST_RUN builds its skb with
eth_type_trans() on the loopback device and never strips a VLAN tag, which is
the hook's view for a NIC without VLAN stripping, except for the device
(ifindex 1, MAC 00:00:00:00:00:00).
"""

from __future__ import annotations

import errno
import os
import struct

import pytest

from bpf_syscall import Bpf
from ebpf_asm import EXIT, SK_BUFF_FIELDS, asm, ld_abs, ldx, mov
from evl_net.transports.sim.ebpf import Program, SkbContext

MAC_DST = bytes.fromhex("502df41d32d0")  # the receiving NIC's address
MAC_SRC = bytes.fromhex("502df41d4010")
IFINDEX = 3  # the real device's ifindex on the simulated board


def _ipv4_udp() -> bytes:
    """A 46-byte IPv4/UDP packet: 20-byte header, 8-byte UDP header, 18 bytes of payload."""
    hdr = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 1, 0, 64, 17, 0, bytes([10, 10, 10, 10]), bytes([10, 10, 10, 11]))
    )
    words = struct.unpack("!10H", bytes(hdr))
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    hdr[10:12] = struct.pack("!H", ~total & 0xFFFF)
    return bytes(hdr) + struct.pack("!HHHH", 4000, 53, 26, 0) + bytes(18)


IP = _ipv4_udp()
assert len(IP) == 46

#: 60 bytes: dst, src, 0x0800, IPv4.
UNTAGGED = MAC_DST + MAC_SRC + b"\x08\x00" + IP
#: 64 bytes: one 802.1Q tag, PCP 5, VID 42 (TCI 0xa02a).
VLAN42 = MAC_DST + MAC_SRC + b"\x81\x00\xa0\x2a" + b"\x08\x00" + IP
#: 68 bytes: 802.1ad outer tag VID 100 (TCI 0x0064), 802.1Q inner tag VID 42 (TCI 0x002a).
QINQ = MAC_DST + MAC_SRC + b"\x88\xa8\x00\x64" + b"\x81\x00\x00\x2a" + b"\x08\x00" + IP
FRAMES = {"untagged": UNTAGGED, "vlan42": VLAN42, "qinq": QINQ}
assert [len(f) for f in FRAMES.values()] == [60, 64, 68]

#: The NIC's RX VLAN stripping: none, 802.1Q only (NETIF_F_HW_VLAN_CTAG_RX,
#: the common case), 802.1Q and 802.1ad (CTAG_RX and STAG_RX).
NICS = {
    "none": {"vlan_offload": False},
    "ctag": {"vlan_offload": True, "stag_offload": False},
    "ctag+stag": {"vlan_offload": True, "stag_offload": True},
}

#: __sk_buff offsets (include/uapi/linux/bpf.h) of the fields socket filters read.
FIELDS = dict(SK_BUFF_FIELDS)
#: Packet probes: the 16-bit words at skb->data + 0 and + 2 (BPF_LD_ABS, network order).
PROBES = {"data+0": 0, "data+2": 2}


def field_program(off: int) -> bytes:
    """r0 = *(u32 *)(ctx + off); exit."""
    return asm(ldx("w", 0, 1, off), EXIT)


def probe_program(k: int) -> bytes:
    """r6 = ctx; r0 = ntohs(*(u16 *)(skb->data + k)); exit."""
    return asm(mov(6, 1), ld_abs("h", k), EXIT)


PROGRAMS = {name: field_program(off) for name, off in FIELDS.items()}
PROGRAMS |= {name: probe_program(k) for name, k in PROBES.items()}


def row(**nonzero: int) -> dict[str, int]:
    """A full expected row: every field 0 but those given."""
    unknown = set(nonzero) - set(PROGRAMS)
    assert not unknown, unknown
    return {name: nonzero.get(name, 0) for name in PROGRAMS}


# protocol and vlan_proto are __be16 read into a u32 on a little-endian view
# of the context: ETH_P_IP 0x0800 reads 0x0008, ETH_P_8021Q 0x8100 reads
# 0x0081, ETH_P_8021AD 0x88a8 reads 0xa888.  Everything not listed is 0:
# ingress_ifindex (skb_iif not set before __netif_receive_skb_core), mark,
# priority, tc_index, cb[] (cleared by bpf_prog_run_clear_cb), hash and
# queue_mapping (this driver sets neither), napi_id (marked after the hook),
# gso_*; pkt_type is PACKET_HOST (0): the frames are addressed to the NIC.
UNTAGGED_ROW = row(len=46, protocol=0x0008, ifindex=IFINDEX, **{"data+0": 0x4500, "data+2": 46})
HOOK: dict[tuple[str, str], dict[str, int]] = {
    ("untagged", "none"): UNTAGGED_ROW,
    ("untagged", "ctag"): UNTAGGED_ROW,
    ("untagged", "ctag+stag"): UNTAGGED_ROW,
    # Tag left in the data: protocol is the TPID, skb->data at the TCI, 64 - 14 bytes.
    ("vlan42", "none"): row(len=50, protocol=0x0081, ifindex=IFINDEX, **{"data+0": 0xA02A, "data+2": 0x0800}),
    # Tag stripped: the whole TCI (PCP 5 included) in vlan_tci, 64 - 4 - 14 bytes.
    ("vlan42", "ctag"): row(
        len=46,
        protocol=0x0008,
        vlan_present=1,
        vlan_tci=0xA02A,
        vlan_proto=0x0081,
        ifindex=IFINDEX,
        **{"data+0": 0x4500, "data+2": 46},
    ),
    # A CTAG-only NIC does not touch an 802.1ad outer tag: both tags stay, 68 - 14 bytes.
    ("qinq", "none"): row(len=54, protocol=0xA888, ifindex=IFINDEX, **{"data+0": 0x0064, "data+2": 0x8100}),
    # Outer tag stripped: protocol is the inner tag's TPID, skb->data at the inner TCI.
    ("qinq", "ctag+stag"): row(
        len=50,
        protocol=0x0081,
        vlan_present=1,
        vlan_tci=0x0064,
        vlan_proto=0xA888,
        ifindex=IFINDEX,
        **{"data+0": 0x002A, "data+2": 0x0800},
    ),
}
HOOK[("vlan42", "ctag+stag")] = HOOK[("vlan42", "ctag")]
HOOK[("qinq", "ctag")] = HOOK[("qinq", "none")]
CASES = sorted(HOOK)


def sim_read(frame: bytes, skb: SkbContext) -> dict[str, int]:
    return {name: Program(insns).run(frame, skb) for name, insns in PROGRAMS.items()}


@pytest.mark.parametrize(("frame", "nic"), CASES)
def test_fields_at_the_rx_hook_match_the_hand_table(frame, nic):
    skb = SkbContext.for_frame(FRAMES[frame], ifindex=IFINDEX, dev_addr=MAC_DST, **NICS[nic])
    assert sim_read(FRAMES[frame], skb) == HOOK[(frame, nic)]


def test_the_default_nic_strips_ctag_and_stag():
    """for_frame()'s defaults (what traffic.run_filter uses) are the ctag+stag column."""
    for frame in FRAMES:
        skb = SkbContext.for_frame(FRAMES[frame], ifindex=IFINDEX, dev_addr=MAC_DST)
        assert sim_read(FRAMES[frame], skb) == HOOK[(frame, "ctag+stag")]


def test_tag_already_stripped_by_the_nic():
    """vlan=: the wire frame is untagged, the descriptor carried VID 42."""
    skb = SkbContext.for_frame(UNTAGGED, vlan=42, ifindex=IFINDEX, dev_addr=MAC_DST)
    want = UNTAGGED_ROW | {"vlan_present": 1, "vlan_tci": 42, "vlan_proto": 0x0081}
    assert sim_read(UNTAGGED, skb) == want


def test_vlan_argument_for_a_tag_left_in_the_data_is_an_error():
    with pytest.raises(ValueError, match="leaves the frame's 0x88a8 tag in the data"):
        SkbContext.for_frame(QINQ, vlan=100, stag_offload=False)
    with pytest.raises(ValueError, match="0x8100 tag in the data"):
        SkbContext.for_frame(VLAN42, vlan=42, vlan_offload=False)


@pytest.mark.parametrize(
    ("dst", "pkt_type"),
    [
        (MAC_DST, 0),  # PACKET_HOST
        (b"\xff" * 6, 1),  # PACKET_BROADCAST
        (bytes.fromhex("01005e000001"), 2),  # PACKET_MULTICAST (224.0.0.1)
        (bytes.fromhex("502df41d0001"), 3),  # PACKET_OTHERHOST (promiscuous NIC)
    ],
)
def test_pkt_type_is_eth_type_trans_against_the_nic_address(dst, pkt_type):
    frame = dst + VLAN42[6:]
    skb = SkbContext.for_frame(frame, ifindex=IFINDEX, dev_addr=MAC_DST)
    assert Program(PROGRAMS["pkt_type"]).run(frame, skb) == pkt_type


def test_driver_set_fields():
    """hash (RSS) and queue_mapping (skb_record_rx_queue: queue + 1) come from the driver."""
    skb = SkbContext.for_frame(UNTAGGED, ifindex=IFINDEX, dev_addr=MAC_DST, rx_queue=2, hash=0x9E3779B9)
    assert sim_read(UNTAGGED, skb) == UNTAGGED_ROW | {"queue_mapping": 3, "hash": 0x9E3779B9}


# ==========================================================================
# The kernel as the oracle: BPF_PROG_TEST_RUN
# ==========================================================================

NO_KERNEL_ENV = "EVL_TEST_NO_KERNEL_ORACLE"


class KernelTestRun:
    """BPF_PROG_LOAD of a socket filter and BPF_PROG_TEST_RUN without ctx_in."""

    def __init__(self) -> None:
        self.bpf = Bpf()
        if self.verdicts(asm(mov(0, imm=3), EXIT), [bytes(64)]) != [3]:
            raise OSError(errno.EIO, "BPF_PROG_TEST_RUN gave a wrong result")

    def verdicts(self, insns: bytes, frames: list[bytes]) -> list[int]:
        fd, log = self.bpf.prog_load(insns, log_size=1 << 16)
        if fd < 0:
            raise OSError(-fd, f"{os.strerror(-fd)}: {log}")
        try:
            return [self._run(fd, frame) for frame in frames]
        finally:
            os.close(fd)

    def _run(self, fd: int, frame: bytes) -> int:
        return self.bpf.test_run(fd, frame)


@pytest.fixture(scope="module")
def oracle() -> KernelTestRun:
    if os.environ.get(NO_KERNEL_ENV):
        pytest.skip(f"kernel oracle disabled by {NO_KERNEL_ENV}")
    try:
        return KernelTestRun()
    except OSError as exc:
        pytest.skip(f"kernel oracle unavailable ({exc.strerror})")


# The test run's device is lo: ifindex 1, address 00:00:00:00:00:00, so the
# frames (to MAC_DST) are PACKET_OTHERHOST (3); no VLAN stripping.
def kernel_row(frame: str) -> dict[str, int]:
    return HOOK[(frame, "none")] | {"ifindex": 1, "pkt_type": 3}


@pytest.mark.parametrize("frame", list(FRAMES))
def test_kernel_test_run_matches_the_hand_table(oracle, frame):
    got = {name: oracle.verdicts(insns, [FRAMES[frame]])[0] for name, insns in PROGRAMS.items()}
    assert got == kernel_row(frame)


@pytest.mark.parametrize("frame", list(FRAMES))
def test_simulator_matches_the_kernel_for_tags_in_the_data(oracle, frame):
    """The interpreter, given the test run's device and no stripping, reads what the kernel reads."""
    skb = SkbContext.for_frame(FRAMES[frame], vlan_offload=False, ifindex=1, dev_addr=bytes(6))
    got = {name: oracle.verdicts(insns, [FRAMES[frame]])[0] for name, insns in PROGRAMS.items()}
    assert sim_read(FRAMES[frame], skb) == got
    assert sim_read(FRAMES[frame], SkbContext(ifindex=1, dev_addr=bytes(6))) == got
