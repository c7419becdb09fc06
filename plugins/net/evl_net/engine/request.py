"""What a parsed ``evl net`` command line asks for, and what each step returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    """The command line, parsed: the input of planning and of every action."""

    ifname: str | None = None
    pool_size: int | None = None
    buffer_size: int | None = None
    gateway: bool = False
    #: action name -> its argument (None when the option takes none or got none)
    actions: dict[str, Any] = field(default_factory=dict)
    #: long names of every option given, for actions that depend on a sibling option
    seen: set[str] = field(default_factory=set)
    json: bool = False
    jsonl: bool = False
    accept_new_host_key: bool = False
    all_interfaces: bool = False
    format: str | None = None
    transport: str | None = None
    board: str | None = None
    remotes: list[str] = field(default_factory=list)
    #: remote boards (--hosts, --jobs, --ssh, --timeout): raw text, checked where used
    hosts: str | None = None
    jobs: str | None = None
    ssh: str | None = None
    timeout: str | None = None


@dataclass
class Result:
    """One step's outcome as data; formatters turn it into text."""

    action: str
    ifname: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.ifname is not None:
            out["ifname"] = self.ifname
        out.update(self.data)
        return out
