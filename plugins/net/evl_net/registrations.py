"""The records ``net`` plugins register: operations, transports and formatters.

They live apart from :mod:`evl_net.hookspecs` (which re-exports them), so
that running ``evl net`` from the registry cache imports neither pluggy nor
any plugin module: see :mod:`evl_core.regcache`.
"""

from __future__ import annotations

from evl_core.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from evl_core.hookspecs import Ref

#: The C tool's own long options.  No plugin may claim one, or a prefix of one:
#: every abbreviation of a C long option keeps meaning what it means in C.
C_LONG_OPTIONS = frozenset(
    {
        "interface",
        "filter",
        "solicit",
        "solicit-permanent",
        "enable-port",
        "disable-port",
        "pool-size",
        "buffer-size",
        "query-port",
        "allow-gateway",
        "set-vlan-ids",
        "print-vlan-ids",
        "help",
    }
)
#: The long options of ``evl net`` that are not operations (see ``evl_net.cli.options.MODIFIERS``,
#: which a test keeps equal to this): no plugin may claim one either.
OPTION_NAMES = frozenset(
    {
        "interface",
        "pool-size",
        "buffer-size",
        "allow-gateway",
        "help",
        "json",
        "all-interfaces",
        "format",
        "transport",
        "board",
        "remote",
        "hosts",
        "jobs",
        "jsonl",
        "accept-new-host-key",
        "ssh",
        "timeout",
        "retries",
        "known-hosts",
        "watch",
        "count",
    }
)


@record
class TransportInfo:
    """A way to reach an EVL network stack.

    ``factory(request) -> Transport`` builds it (see
    :class:`evl_net.transports.contract.Transport` for the primitives it must offer).
    """

    name: str
    summary: str
    factory: Ref


@record
class Formatter:
    """Renders results as text: ``render(result, request) -> str | None``.

    ``None`` means "not a kind of result I render": chosen by default, the
    plain text formatter is used instead; asked for with ``--format``, it is
    an error naming the formatters that can.
    """

    name: str
    summary: str
    render: Ref


@record(eq=False)
class Operation:
    """One command option of ``evl net`` and everything about it: the operations table's row.

    ``name`` is the operation (several options may share one: ``-s``/``-S``);
    given together, operations run in ``order`` (the C tool's fixed sequence:
    disable 10, enable 20, filter 30, set VLANs 40, show VLANs 50, solicit 60,
    query 70).  ``long``/``short``/``has_arg`` (getopt's 0 / 1 / 2) are its
    option; a third party's is long-only (``short`` None: the C tool's letters
    are taken).  ``check(request, argument)`` validates the argument as the
    command line is checked; ``precheck(request, argument, transport)`` checks
    what depends on the board, before any operation runs;
    ``run(request, argument, transport)`` performs it through
    the transport's primitives (:mod:`evl_net.transports.contract`) and
    returns a result record (:class:`evl_net.engine.request.OpResult`), which
    renders itself as text and has one JSON form.  ``requests`` names the
    primitives it may call (whether it mutates follows from them), ``help``
    is its line in ``--help`` and the man page, ``man`` an optional paragraph
    for the man page.
    """

    name: str
    order: int
    long: str
    short: str | None
    has_arg: int
    run: Ref
    help: str
    metavar: str | None = None
    needs_interface: bool = False
    requests: tuple[str, ...] = ()
    check: Ref | None = None
    precheck: Ref | None = None
    man: str | None = None

    @property
    def mutates(self) -> bool:
        from evl_net.transports.contract import BY_METHOD

        return any(BY_METHOD[r].mutates for r in self.requests if r in BY_METHOD)
