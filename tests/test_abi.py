"""The ABI cross-check: what gcc makes of the project's C header against ``evl_net.kernel.abi``.

``tests/abi/evl_abi.h`` states the EVL uapi structs and request macros in C
(from the research facts, with <linux/ioctl.h>); ``tests/abi/abi_dump.c``
prints every size, offset, bitfield mask and request number; every line must
match the Python layouts and numbers, and every Python layout and number must
appear in the dump.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from evl_net.kernel import abi
from evl_net.transports import contract

HERE = Path(__file__).resolve().parent / "abi"

# C names that differ from evl_net.kernel.abi's.
REQUEST_ALIASES = {
    "EVL_NET_GETDEVFD": "G2_EVL_NET_GETDEVFD",
    "EVL_NET_OPENPORT": "G2_EVL_NET_OPENPORT",
    "EVL_NDEVIOC_SWITCHOFF": "G2_EVL_NDEVIOC_SWITCHOFF",
}


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> list[list[str]]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to compile tests/abi/abi_dump.c")
    out = tmp_path_factory.mktemp("abi") / "abi_dump"
    build = subprocess.run(
        [gcc, "-std=gnu11", "-Wall", "-Werror", f"-I{HERE}", str(HERE / "abi_dump.c"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(out)], capture_output=True, text=True, timeout=30, check=True)
    return [line.split() for line in run.stdout.splitlines()]


def facts(dump, kind):
    return [words[1:] for words in dump if words[0] == kind]


def test_struct_sizes(dump):
    layouts = abi.layouts()
    seen = set()
    for name, size in facts(dump, "size"):
        if name == "sockaddr_storage":
            assert int(size) == abi.SOCKADDR_STORAGE_SIZE
        elif name == "pointer":
            assert int(size) == abi.NATIVE.ptr_size
        else:
            assert layouts[name].size == int(size), name
            seen.add(name)
    assert seen == set(layouts), "a Python layout has no C counterpart (or the reverse)"


def test_field_offsets(dump):
    layouts = abi.layouts()
    c_fields: dict[str, dict[str, int]] = {}
    for struct_name, field, offset in facts(dump, "offset"):
        c_fields.setdefault(struct_name, {})[field] = int(offset)
    for name, layout in layouts.items():
        assert layout.offsets == c_fields[name], name


def test_devstat_flag_bits(dump):
    masks = {field: int(mask, 16) for _s, field, mask in facts(dump, "flag")}
    assert masks == {"oob_capable": abi.DEVSTAT_OOB_CAPABLE, "oob_port": abi.DEVSTAT_OOB_PORT}


def test_request_numbers(dump):
    c_requests = {REQUEST_ALIASES.get(name, name): int(value, 16) for name, value in facts(dump, "request")}
    assert c_requests == abi.REQUESTS
    assert abi.EVL_NETIOC_DEVOPEN == c_requests["EVL_NETIOC_DEVOPEN"]
    assert abi.EVL_NDEVIOC_SETRXEBPF == c_requests["EVL_NDEVIOC_SETRXEBPF"]
    assert abi.EVL_NDEVIOC_SETPORT == c_requests["EVL_NDEVIOC_SETPORT"]
    assert abi.EVL_NDEVIOC_GETSTAT == c_requests["EVL_NDEVIOC_GETSTAT"]
    assert abi.EVL_SOCKIOC_SOLICIT == c_requests["EVL_SOCKIOC_SOLICIT"]
    assert abi.EVL_CTLIOC_GET_COREINFO == c_requests["EVL_CTLIOC_GET_COREINFO"]


def test_constants(dump):
    consts = {name: int(value, 16) for name, value in facts(dump, "const")}
    assert consts["EVL_NEIGH_PERMANENT"] == abi.EVL_NEIGH_PERMANENT == contract.NEIGH_PERMANENT
    assert consts["EVL_NEIGH_MAYROUTE"] == abi.EVL_NEIGH_MAYROUTE == contract.NEIGH_MAYROUTE
    assert (consts["SOCK_OOB_NEWEST"], consts["SOCK_OOB_OLDER"]) == abi.SOCK_OOB_CANDIDATES
    assert consts["EVL_NET_IOCBASE"] == abi.EVL_NET_IOCBASE
    assert consts["EVL_NETDEV_IOCBASE"] == abi.EVL_NETDEV_IOCBASE
    assert consts["EVL_SOCKET_IOCBASE"] == abi.EVL_SOCKET_IOCBASE
    assert consts["EVL_CONTROL_IOCBASE"] == ord(abi.EVL_CONTROL_IOCBASE)


def test_abi_prereq_is_the_cores():
    from evl_core import EVL_ABI_PREREQ

    assert abi.EVL_ABI_PREREQ == EVL_ABI_PREREQ == 45


# -- no compiler needed ----------------------------------------------------------


def test_arm32_solicit_is_132_bytes():
    """32-bit ARM: the sockaddr storage is 4-byte aligned, so no tail padding."""
    lay = abi.layouts(abi.ARM32)
    assert lay["evl_net_solicit"].size == 132
    assert lay["evl_net_solicit"].offsets == {"addr": 0, "flags": 128}
    reqs = abi.requests(abi.ARM32)
    assert reqs["EVL_SOCKIOC_SOLICIT"] == 0x4084EE05
    # Everything else is the same as on LP64: __u64 is 8-aligned on ARM EABI.
    lp64 = abi.requests(abi.Platform(ptr_size=8, u64_align=8))
    assert {k: v for k, v in reqs.items() if k != "EVL_SOCKIOC_SOLICIT"} == {
        k: v for k, v in lp64.items() if k != "EVL_SOCKIOC_SOLICIT"
    }
    assert lp64["EVL_SOCKIOC_SOLICIT"] == 0x4088EE05


def test_layout_engine_follows_u64_alignment():
    """On i386 (__u64 4-aligned) evl_core_info would be 20 bytes: the engine must show it."""
    lay = abi.layouts(abi.Platform(ptr_size=4, u64_align=4))
    assert lay["evl_core_info"].size == 20
    assert lay["evl_core_info"].offsets["shm_size"] == 12


def test_ioc_encoding():
    req = abi._IOWR(0xEF, 0, 16)
    assert (abi._IOC_DIR(req), abi._IOC_TYPE(req), abi._IOC_NR(req), abi._IOC_SIZE(req)) == (3, 0xEF, 0, 16)
    assert abi._IOR("C", 0, 24) == abi._IOC(abi._IOC_READ, 0x43, 0, 24)
    assert abi._IO(0xEF, 1) == 0xEF01
    with pytest.raises(ValueError):
        abi._IOW(0xEF, 0, 1 << 14)  # the size field has 14 bits
    with pytest.raises(ValueError):
        abi._IOW(0x100, 0, 4)


def test_pack_zeroes_padding_and_round_trips():
    raw = abi.DEVOPEN.pack(name_ptr=0x1122334455667788, fd=-1)
    assert len(raw) == 16 and raw[12:] == bytes(4)
    assert abi.DEVOPEN.unpack(raw) == {"name_ptr": 0x1122334455667788, "fd": -1}
    assert abi.DEVOPEN.padding_is_zero(raw)
    assert not abi.DEVOPEN.padding_is_zero(raw[:12] + b"\1\0\0\0")
    sol = abi.SOLICIT.pack(addr=b"\2\0", flags=3)
    assert len(sol) == abi.SOLICIT.size and sol[2:128] == bytes(126) and sol[132:] == bytes(len(sol) - 132)
    with pytest.raises(TypeError):
        abi.DEVSTAT.pack(nope=1)
    with pytest.raises(ValueError):
        abi.DEVSTAT.unpack(b"\0" * 63)


def test_request_names_prefer_g4():
    # DEVOPEN shares its number with G2's GETDEVFD: messages name the G4 request.
    assert abi.REQUEST_NAMES[abi.EVL_NETIOC_DEVOPEN] == "EVL_NETIOC_DEVOPEN"
