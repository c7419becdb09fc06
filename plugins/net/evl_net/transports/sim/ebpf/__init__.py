"""An interpreter for the eBPF socket-filter programs EVL runs on RX frames.

The simulator runs the program installed with ``evl net -F`` on every
injected frame to get its verdict (docs/abi.md, "eBPF RX filter": 0 DROP, 1 ACCEPT, 2 SKIP,
3 VLAN, anything else acts like SKIP), with the semantics of the kernel (its
interpreter, JITs and verifier; checked in tests/test_ebpf_vm.py against
``BPF_PROG_TEST_RUN`` and the real RX path), standard library only::

    prog = Program(bpfobj.first_socket_filter(data).insns)   # decode + check once
    verdict = prog.run(frame, SkbContext.for_frame(frame))   # fast, per frame

``frame`` starts at the Ethernet header, but the skb data the program reads
starts *after* it, as in the kernel: legacy packet loads and
``bpf_skb_load_bytes()`` at offset 0 read the network header (a filter
written with Ethernet offsets reads the IP header instead; use
``skb->protocol`` or ``SKF_LL_OFF``).

The instruction set is the full one of current kernels (RFC 9669).  Layers,
bottom up, each importing only from those below it:

* :mod:`.isa` opcode tables and constants, :mod:`.errors` the exceptions;
* :mod:`.decoder` bytes to instructions, :mod:`.disassembler` instructions to text;
* :mod:`.skb` :class:`SkbContext` and the ``__sk_buff`` layout;
* :mod:`.maps` the BPF maps (array, hash, LRU, per-CPU, ring buffer);
* :mod:`.memory` the address space and run state, :mod:`.alu` signed
  div/mod and byte swaps, :mod:`.helpers` the BPF helpers;
* :mod:`.codegen` checks and translates basic blocks into Python functions;
* :mod:`.vm` :class:`Program`, the executor;
* :mod:`.verifier` :func:`verify`, the kernel's load-time checks, run once
  when a program is installed (``evl net -F``), so that what the kernel
  would refuse is refused there, in its words, instead of failing on a frame::

    verify(program.insns, program.license)   # raises VerifierError
"""

from __future__ import annotations

from . import maps
from .disassembler import disasm
from .errors import BudgetExceededError, EbpfError, UnsupportedError
from .memory import CTX_BASE, STACK_SIZE, STACK_TOP
from .skb import SkbContext
from .verifier import SimulatorLimitError, Verified, VerifierError, verify
from .vm import DEFAULT_BUDGET, Program

__all__ = [
    "CTX_BASE",
    "DEFAULT_BUDGET",
    "STACK_SIZE",
    "STACK_TOP",
    "BudgetExceededError",
    "EbpfError",
    "Program",
    "SimulatorLimitError",
    "SkbContext",
    "UnsupportedError",
    "Verified",
    "VerifierError",
    "disasm",
    "maps",
    "verify",
]
