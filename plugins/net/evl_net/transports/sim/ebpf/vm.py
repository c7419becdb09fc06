"""The executor: :class:`Program` decodes, checks and translates once, then runs frames.

The top layer, the only one the rest of the simulator needs.  A run builds
the run-state list of :mod:`.memory` and loops over the block functions of
:mod:`.codegen`, or calls the program's fused function when it has one and
the budget cannot run out (:func:`~.codegen.fuse`: same results, errors and
side effects, without the per-block call and budget check).  What depends
on run-time values (pointer accesses out of the stack or the context,
misaligned stack accesses, too deep calls) raises
:class:`~.errors.EbpfError` here, carrying the index of the offending
instruction (``.insn``) and its disassembly.  An instruction budget
(:data:`DEFAULT_BUDGET` executed instructions, counted per basic block) turns
an endless loop into :class:`~.errors.BudgetExceededError` where the kernel's
verifier would have refused the program.  The return value is r0 truncated
to 32 bits, as ``bpf_prog_run()`` returns it.  Whatever goes wrong during a
run is an :class:`~.errors.EbpfError` (a Python exception escaping generated
code or a helper becomes one, naming the block it came from): callers that
run an installed program need to handle that one type only.

A :class:`Program` can run frames from several threads: all run state lives
in the per-run register list, except the random generator.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from .codegen import Compiler
from .decoder import decode
from .disassembler import disasm
from .errors import BudgetExceededError, EbpfError, RunError
from .isa import M32
from .memory import CALLS, CB_DEPTH, CTX_BASE, FUNC_BASE, MAX_CALL_FRAMES, STACK_SIZE, STACK_TOP
from .skb import ETH_HLEN, SkbContext

#: Executed-instruction budget of a run (the kernel has none: its verifier
#: refuses programs that might not terminate).
DEFAULT_BUDGET = 1_000_000


class FrameError(EbpfError, ValueError):
    """The frame given to a run is not one (shorter than an Ethernet header)."""


class Program:
    """A decoded, checked and translated socket-filter program.

    ``seed`` seeds bpf_get_prandom_u32() (deterministic runs), ``clock``
    gives bpf_ktime_get_ns() (default: time.monotonic_ns; also the
    timestamps of bpf_trace_printk() lines and, at ``hz`` ticks a second,
    bpf_jiffies64()), ``cpu`` is bpf_get_smp_processor_id(), ``budget`` the
    executed-instruction limit of one run.
    """

    def __init__(
        self,
        insns: bytes,
        *,
        budget: int = DEFAULT_BUDGET,
        seed: int = 0,
        clock: Callable[[], int] = time.monotonic_ns,
        cpu: int = 0,
        hz: int = 250,
    ) -> None:
        self.insns = bytes(insns)
        self.decoded = decode(self.insns)
        self.budget = budget
        self.rng = random.Random(seed)  # noqa: S311 - like the kernel's prandom: not crypto, seedable
        self.clock = clock
        self.cpu = cpu
        self.hz = hz
        compiler = Compiler(self.decoded)
        self._blocks, self._lens = compiler.compile()
        self._fused = compiler.fused
        self._stack_bytes = STACK_SIZE * (MAX_CALL_FRAMES if compiler.has_calls else 1)

    @classmethod
    def from_object(cls, data: bytes, name: str = "object", **kwargs: Any) -> Program:
        """The program ``evl net -F`` would install from an object file."""
        from evl_net.kernel import bpfobj

        return cls(bpfobj.first_socket_filter(data, name).insns, **kwargs)

    def __len__(self) -> int:
        return len(self.decoded)

    def reseed(self, seed: int) -> None:
        """Restart bpf_get_prandom_u32()'s sequence from ``seed``."""
        self.rng.seed(seed)

    def disasm(self) -> list[str]:
        """The program's text, one ``pc: insn`` line per instruction."""
        return [f"{pc:4}: {disasm(insn, pc)}" for pc, insn in enumerate(self.decoded) if insn]

    def execute(
        self,
        frame: bytes,
        skb: SkbContext | None = None,
        trace: Callable[[str], None] | None = None,
        maps: list[Any] | None = None,
    ) -> int:
        """Run the program on frame; the full 64-bit r0 at exit.

        ``trace`` receives each line bpf_trace_printk() writes, in the
        kernel's trace_pipe format (without the newline); None discards them.
        ``maps`` are the program's maps (:mod:`.maps`), indexed as its
        ``lddw`` instructions name them.
        """
        if len(frame) < ETH_HLEN:
            raise FrameError(f"a {len(frame)}-byte frame has no Ethernet header")
        if skb is None:
            skb = SkbContext.for_frame(frame)
        if skb.vlan_offloaded:
            frame = frame[:12] + frame[16:]
            if len(frame) < ETH_HLEN:
                raise FrameError(f"a {len(frame)}-byte frame has no Ethernet header")
        # r0-r10, then the run state at memory.STK, PKT, CTX, SKB, CALLS, PROG, TRACE.
        r: list[Any] = [
            0,
            CTX_BASE,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            STACK_TOP,
            bytearray(self._stack_bytes),
            frame,
            None,
            skb,
            [],
            self,
            trace,
            maps if maps is not None else (),
            0,
        ]
        fused = self._fused
        if fused is not None and fused.insns > self.budget:
            fused = None  # a budget smaller than the program: counted block by block
        pc = 0
        try:
            if fused is not None:
                r[0] = fused.run(r)
            else:
                blocks, lens, left = self._blocks, self._lens, self.budget
                while pc >= 0:
                    left -= lens[pc]
                    if left < 0:
                        raise BudgetExceededError(
                            f"instruction budget of {self.budget} exhausted (endless loop?)",
                            pc,
                            disasm(self.decoded[pc], pc),
                        )
                    pc = blocks[pc](r)
        except RunError as exc:
            raise exc.cls(exc.message, exc.pc, disasm(self.decoded[exc.pc], exc.pc)) from None
        except EbpfError:
            raise
        except Exception as exc:  # a fault of this run, whatever Python raised: report it as one
            if fused is not None:
                pc = fused.block_of(exc)
            raise EbpfError(f"run-time fault: {type(exc).__name__}: {exc}", pc, disasm(self.decoded[pc], pc)) from exc
        finally:
            for m in maps or ():
                abandon = getattr(m, "abandon", None)
                if abandon is not None:
                    abandon()
        return r[0]

    def callback(self, r: list, fn: int, args: tuple[int, ...], pc: int) -> int:
        """Call the callback at ``fn`` (a ``lddw`` of a function) with r1-r5 = args, to its exit; its r0.

        It runs as a bpf-to-bpf call from the helper at ``pc``: r6-r9 and the
        caller's stack survive it, r1-r5 are the helper's to clobber.  A
        callback has the run's budget of its own.
        """
        target = fn - FUNC_BASE
        if not 0 <= target < len(self._blocks) or self._blocks[target] is None:
            raise RunError(pc, f"{fn:#x} is not a function of the program")
        calls = r[CALLS]
        if len(calls) + 1 >= MAX_CALL_FRAMES:
            raise RunError(pc, f"a callback nested deeper than {MAX_CALL_FRAMES} frames")
        calls.append((-1, r[6], r[7], r[8], r[9], r[10]))
        r[10] -= STACK_SIZE
        r[1], r[2], r[3], r[4], r[5] = args
        r[CB_DEPTH] += 1
        blocks, lens, left, p = self._blocks, self._lens, self.budget, target
        while p >= 0:
            left -= lens[p]
            if left < 0:
                raise RunError(p, f"instruction budget of {self.budget} exhausted in a callback", BudgetExceededError)
            p = blocks[p](r)
        r[CB_DEPTH] -= 1
        return r[0]

    def run(
        self,
        frame: bytes,
        skb: SkbContext | None = None,
        trace: Callable[[str], None] | None = None,
        maps: list[Any] | None = None,
    ) -> int:
        """The program's return value (u32) on ``frame``: the RX verdict.

        ``frame`` starts at the Ethernet header; ``skb`` defaults to
        ``SkbContext.for_frame(frame)``; ``trace`` receives the trace_pipe
        lines of bpf_trace_printk(), ``maps`` are the program's maps (see
        :meth:`execute`).
        """
        return self.execute(frame, skb, trace, maps) & M32
