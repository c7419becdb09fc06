"""Build the test eBPF objects from tests/bpf/*.c with clang.

Kept out of conftest so tests import it explicitly (``import bpf_build``)
and can skip cleanly on hosts without an eBPF-capable clang.
"""

from __future__ import annotations

import functools
import pathlib
import shutil
import subprocess
import sysconfig
from typing import Any

SRC_DIR = pathlib.Path(__file__).resolve().parent / "bpf"


def _clang() -> str | None:
    return shutil.which("clang")


def _include_flags() -> list[str]:
    # -target bpf drops the host multiarch include dir, which holds
    # <asm/types.h> needed by <linux/bpf.h>.
    if pathlib.Path("/usr/include/asm/types.h").exists():
        return []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    candidates = [pathlib.Path("/usr/include", multiarch)] if multiarch else []
    candidates += sorted(pathlib.Path("/usr/include").glob("*-linux-*"))
    for inc in candidates:
        if (inc / "asm" / "types.h").exists():
            return [f"-I{inc}"]
    return []


@functools.cache
def have_clang() -> bool:
    """True if clang can target BPF and the libbpf headers are present."""
    clang = _clang()
    if clang is None or not pathlib.Path("/usr/include/bpf/bpf_helpers.h").exists():
        return False
    try:
        out = subprocess.run([clang, "-print-targets"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and " bpf " in out.stdout


def build(src_name: str, out_dir: pathlib.Path, target: str = "bpf", flags: tuple[str, ...] = ()) -> pathlib.Path:
    """Compile tests/bpf/<src_name>.c to <out_dir>/<src_name>.o.

    ``target`` may be "bpfel"/"bpfeb" to force a byte order; the object
    name then carries it as a suffix so both can coexist in out_dir.
    ``flags`` come before the include flags (``-g``, ``-I``...).
    """
    clang = _clang()
    if clang is None:
        raise RuntimeError("clang not found")
    src = SRC_DIR / f"{src_name}.c"
    suffix = "" if target == "bpf" else f".{target}"
    out = pathlib.Path(out_dir) / f"{src_name}{suffix}.o"
    cmd = [clang, "-O2", *flags, "-target", target, *_include_flags(), "-c", str(src), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return out


def objects(names: list[str], tmp_path_factory: Any) -> dict[str, bytes]:
    """The objects of tests/bpf/<name>.c, built once in a fresh directory; the test skips without clang."""
    import pytest

    if not have_clang():
        pytest.skip("clang with the BPF target and libbpf-dev are needed to build tests/bpf/*.c")
    out = tmp_path_factory.mktemp("bpf")
    return {name: build(name, out).read_bytes() for name in names}


def user_objects(names: list[str], tmp_path_factory: Any) -> dict[str, bytes]:
    """tests/bpf/<name>.c built as the README tells users: ``clang -O2 -g -target bpf $(evl sim filter --cflags)``."""
    import pytest

    from evl_net.cli.sim import cflags

    if not have_clang():
        pytest.skip("clang with the BPF target and libbpf-dev are needed to build tests/bpf/*.c")
    out = tmp_path_factory.mktemp("bpf-users")
    return {name: build(name, out, flags=("-g", *cflags())).read_bytes() for name in names}
