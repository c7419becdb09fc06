"""What a parsed ``evl net`` command line asks for, and the base of what each operation returns."""

from __future__ import annotations

from evl_core.record import field, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, ClassVar


@record
class Request:
    """The command line, parsed: the input of planning and of every operation."""

    ifname: str | None = None
    pool_size: int | None = None
    buffer_size: int | None = None
    gateway: bool = False
    #: operation name -> its argument (None when the option takes none or got none)
    actions: dict[str, Any] = field(default_factory=dict)
    #: long names of every option given, for operations that depend on a sibling option
    seen: set[str] = field(default_factory=set)
    json: bool = False
    jsonl: bool = False
    accept_new_host_key: bool = False
    all_interfaces: bool = False
    format: str | None = None
    transport: str | None = None
    board: str | None = None
    remotes: list[str] = field(default_factory=list)
    #: remote boards (--hosts, --jobs, --ssh, --timeout, --retries, --known-hosts): raw text, checked where used
    hosts: str | None = None
    jobs: str | None = None
    ssh: str | None = None
    timeout: str | None = None
    retries: str | None = None
    known_hosts: str | None = None
    #: -Q --watch[=SECONDS] ("" without a value) and --count N: raw text, checked where used
    watch: str | None = None
    count: str | None = None


class OpResult:
    """What an operation returns: a dataclass with ``action`` naming its operation.

    Its JSON form is ``{"action": ..., <its fields>}`` (:func:`evl_net.model.to_json`);
    its text is what ``evl net`` prints for it, the C tool's output for the
    built-ins.  A subclass that does not say otherwise prints one
    ``key: value`` line per field, so a third party's result is never silent.
    """

    action: ClassVar[str] = "?"

    def to_json(self) -> dict[str, Any]:
        from evl_net.model import to_json

        return {"action": self.action, **to_json(self)}

    def text(self, request: Request) -> str:
        lines = [f"{k}: {v}" for k, v in self.to_json().items() if k != "action"]
        return "".join(line + "\n" for line in lines)


def changed(result: Any) -> bool:
    """Whether a result says it changed the board (results without a ``changed`` field did not)."""
    return getattr(result, "changed", False) is True
