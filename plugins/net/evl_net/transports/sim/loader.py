"""Loading an eBPF object as ``evl net -F`` does on a board, for the simulator and ``evl sim filter``.

On a board, libbpf opens the object, creates its maps and relocates the first
program (:mod:`evl_net.kernel.bpflink`), then ``BPF_PROG_LOAD`` runs the
kernel's verifier (:func:`~.ebpf.verify`) before EVL ever sees the program.
:func:`load` does the same and builds what the simulator runs, so that a
program the kernel would refuse, or the simulator could not run, is refused
here, once, with the words of the refusal.
"""

from __future__ import annotations

import errno

from evl_core.record import record
from evl_net.errors import KernelError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from evl_net.kernel.bpflink import MapDef


@record(frozen=True)
class Loaded:
    """A program ready to run: its identity, the (dead-code sanitized) instructions, its maps' definitions."""

    section: str
    name: str
    license: str
    insns: bytes
    maps: tuple[MapDef, ...]
    program: Any  # ebpf.Program


def load(data: bytes, name: str, log: Any = None, cpus: int = 1) -> Loaded:
    """Link, verify and build the object's first program; KernelError with the errno -F would fail with.

    ``log`` (a callable) receives the kernel log line of a program that is
    not a socket filter, which EVL logs when it refuses it; ``cpus`` is the
    board's CPU count (per-CPU maps hold a value for each).
    """
    from evl_net.kernel import bpflink, bpfobj
    from evl_net.transports.sim import ebpf

    try:
        elf = bpfobj.ElfObject(data, name or "object")
        programs = bpfobj.programs(elf)
        if not programs:
            raise KernelError(errno.EINVAL, f"{name}: no eBPF program in object")
        first = programs[0]
        if first.prog_type != "socket_filter":
            if log is not None:
                log("invalid out-of-band eBPF program")
            raise KernelError(errno.EINVAL, f"{name}: program '{first.section}' is not a socket filter")
        linked = bpflink.link(elf, first)
    except bpfobj.BpfObjectError as exc:
        raise KernelError(exc.errno, str(exc)) from None
    program = linked.program
    for m in linked.maps:
        why = ebpf.maps.check_def(m, cpus)
        if why is not None:
            raise KernelError(why[0], f"{name}: {why[1]}")
    why = ebpf.maps.check_total(linked.maps, cpus)
    if why is not None:
        raise KernelError(why[0], f"{name}: {why[1]}")
    try:
        verified = ebpf.verify(
            linked.insns,
            program.license,
            maps=linked.maps,
            func_info=linked.func_info,
            global_funcs=linked.global_funcs,
        )
        vm = ebpf.Program(verified.insns)
    except ebpf.SimulatorLimitError as exc:
        raise KernelError(
            errno.EOPNOTSUPP, f"{name}: the simulator cannot run program '{program.name}': {exc}"
        ) from None
    except ebpf.VerifierError as exc:
        raise KernelError(exc.errno, f"{name}: the kernel's verifier refused program '{program.name}': {exc}") from None
    except ebpf.EbpfError as exc:
        raise KernelError(
            errno.EOPNOTSUPP, f"{name}: the simulator cannot run program '{program.name}': {exc}"
        ) from None
    return Loaded(program.section, program.name, program.license, verified.insns, linked.maps, vm)
