"""``evl net-config`` files: a board's whole out-of-band network setup, read and checked.

A file (TOML; its JSON Schema is ``net-config.schema.json``, shipped with the
package) declares the interfaces the setup needs (``[interface."eth0.42"]``:
parent, vlan_id, addresses, mtu, up), the oob ports (``[port."eth0.42"]``:
pool, buffer, and the eBPF RX ``filter`` with an optional sha256 pin), the
global RX ``vlan_filter``, the ``[[peer]]`` hosts to solicit, and what the
board must offer (``[requires]``: the ABI revisions, oob-capable drivers).
Several files layer (``/etc/evl/net.d/*.toml``, in the order given): tables
of different names add up, peers append, and a key set in two files to two
values is an error naming both.

:func:`read` returns every problem of every file at once, each placed at
its line (:class:`FileProblem`: ``FILE:LINE: key.path: what is wrong``); a
document the schema accepts is then checked for what a schema cannot say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from evl_net.netconfig import lines as linelib

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "net-config.schema.json")
#: The largest file read, and the largest eBPF object a pin is checked on.
FILE_MAX = 16 << 20
OBJECT_MAX = 64 << 20


@dataclass(frozen=True)
class FileProblem:
    """One problem, where it is: ``FILE:LINE: key.path: message``."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        if not self.line:  # the file could not be read: the message names it
            return self.message
        from evl_core.errors import shown

        where = f"{shown(self.file)}:{self.line}: "
        return where + (f"{self.key}: {self.message}" if self.key else self.message)


@dataclass
class Setup:
    """The setup the files declare, merged (the decoded tables, checked)."""

    requires: dict[str, Any] = field(default_factory=dict)
    interfaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    vlan_filter: frozenset[int] | None = None
    peers: list[dict[str, Any]] = field(default_factory=list)


_validator: Any = None


def _schema() -> Any:
    global _validator
    if _validator is None:
        import json

        from evl_net.schema import TOML_NAMES, Validator

        with open(SCHEMA_PATH, encoding="utf-8") as f:
            _validator = Validator(json.load(f), TOML_NAMES, integral_floats=False)
    return _validator


def read(paths: list[str]) -> tuple[Setup, list[FileProblem]]:
    """The merged setup of ``paths`` and every problem found in them (none: the setup is valid)."""
    return read_sources(sources_of(paths))


def sources_of(paths: list[str]) -> list[tuple[str, Any, str]]:
    """The files of ``paths`` (directories expanded) as :func:`read_sources` takes them; unreadable ones as problems."""
    from evl_core.errors import EvlError
    from evl_core.files import read_text

    sources: list[tuple[str, Any, str]] = []
    for path, problem in expand(paths):
        if problem is not None:
            sources.append((path, problem, ""))
            continue
        try:
            text = read_text(path, "net-config file", FILE_MAX)
        except EvlError as exc:
            sources.append((path, FileProblem(path, 0, "", exc.said()), ""))
            continue
        sources.append((path, text, os.path.dirname(os.path.abspath(path))))
    return sources


def read_sources(sources: list[tuple[str, Any, str]]) -> tuple[Setup, list[FileProblem]]:
    """The merged setup of documents given as ``(name, TOML text or decoded mapping, base directory)``.

    What :func:`read` does for files, for a setup that comes as text or data
    (the Ansible module's ``config:``): relative eBPF object paths are taken
    from ``base``; a decoded mapping has no lines, so its problems are at line 1.
    """
    from evl_core.errors import shown
    from evl_core.files import TomlError, parse_toml

    setup = Setup()
    problems: list[FileProblem] = []
    origin: dict[tuple[str | int, ...], tuple[str, int, Any]] = {}  # where each key was first set
    for path, source, base in sources:
        if isinstance(source, FileProblem):
            problems.append(source)
            continue
        if isinstance(source, str):
            try:
                doc = parse_toml(source)
            except TomlError as exc:
                problems.append(FileProblem(path, exc.line or 1, "", f"not TOML: {shown(exc.message, limit=200)}"))
                continue
            where = linelib.index(source)
        elif isinstance(source, dict):
            doc, where = source, {}
        else:
            problems.append(FileProblem(path, 1, "", f"not a table of settings but {type(source).__name__}"))
            continue
        try:
            found = _problems(doc, base)
        except RecursionError:
            problems.append(FileProblem(path, 1, "", "arrays or tables nested too deep"))
            continue
        for prob_path, message in found:
            problems.append(FileProblem(path, linelib.line_of(where, prob_path), _key(prob_path), message))
        if found:
            continue
        _merge(setup, doc, path, base, where, origin, problems)
    return setup, problems


def expand(paths: list[str]) -> list[tuple[str, FileProblem | None]]:
    """``paths`` in order, each directory replaced by its ``*.toml`` files in name order (``/etc/evl/net.d``).

    A directory that cannot be listed, or holds no such file, comes as its problem.
    """
    from evl_core.errors import shown

    out: list[tuple[str, FileProblem | None]] = []
    for path in paths:
        if not os.path.isdir(path):
            out.append((path, None))
            continue
        try:
            names = sorted(n for n in os.listdir(path) if n.endswith(".toml") and not n.startswith("."))
        except OSError as exc:
            why = f"cannot read net-config directory {shown(path)}: {os.strerror(exc.errno or 5)}"
            out.append((path, FileProblem(path, 0, "", why)))
            continue
        if not names:
            out.append((path, FileProblem(path, 0, "", f"no net-config file (*.toml) in {shown(path)}")))
        out += [(os.path.join(path, n), None) for n in names]
    return out


def _problems(doc: dict[str, Any], base: str) -> list[tuple[tuple[str | int, ...], str]]:
    from evl_core.errors import shown
    from evl_net.schema import position

    found = [
        (p.path, p.message + (f": {shown(repr(p.value))}" if p.keyword == "pattern" else ""))
        for p in _schema().problems(doc)
    ]
    if found:
        return found
    out = _consistency(doc, base)
    return sorted(out, key=lambda item: position(doc, item[0]))


def _consistency(doc: dict[str, Any], base: str) -> list[tuple[tuple[str | int, ...], str]]:
    """What the schema cannot say: the kernel's name and list rules, addresses, references, pins."""
    import hashlib
    import ipaddress

    from evl_core.errors import EvlError, shown
    from evl_core.files import read_regular
    from evl_net.kernel import vlans
    from evl_net.kernel.names import name_problem

    out: list[tuple[tuple[str | int, ...], str]] = []
    interfaces: dict[str, Any] = doc.get("interface", {})
    for name, iface in interfaces.items():
        at: tuple[str | int, ...] = ("interface", name)
        problem = name_problem(name)
        if problem is not None:
            out.append((at, f"not an interface name: {shown(repr(name))} ({problem})"))
        if ("parent" in iface) != ("vlan_id" in iface):
            out.append((at, "a VLAN device needs both parent and vlan_id"))
        parent = iface.get("parent")
        if parent is not None:
            if name_problem(parent) is not None:
                out.append(((*at, "parent"), f"not an interface name: {shown(repr(parent))}"))
            elif parent == name or "parent" in interfaces.get(parent, {}):
                out.append(((*at, "parent"), f"{shown(parent)} is a VLAN device: a VLAN device sits on a real device"))
        for j, cidr in enumerate(iface.get("addresses", [])):
            try:
                ipaddress.IPv4Interface(cidr)
            except ValueError:
                out.append(((*at, "addresses", j), f"not an IPv4 address/prefix: {shown(repr(cidr))}"))
    seen: dict[tuple[str, int], str] = {}
    for name, iface in interfaces.items():
        if "parent" in iface and "vlan_id" in iface:
            key = (iface["parent"], iface["vlan_id"])
            if key in seen:
                out.append(
                    (("interface", name, "vlan_id"), f"VLAN {key[1]} on {shown(key[0])} is {shown(seen[key])} already")
                )
            seen.setdefault(key, name)
    for name, port in doc.get("port", {}).items():
        at = ("port", name)
        problem = name_problem(name)
        if problem is not None:
            out.append((at, f"not an interface name: {shown(repr(name))} ({problem})"))
        filt = port.get("filter")
        if filt is not None:
            obj = filt["object"]
            full = obj if os.path.isabs(obj) else os.path.join(base, obj)
            try:
                data = read_regular(full, "eBPF object", OBJECT_MAX)
            except EvlError as exc:
                out.append(((*at, "filter", "object"), exc.said()))
                continue
            pin = filt.get("sha256")
            if pin is not None and hashlib.sha256(data).hexdigest() != pin:
                out.append(((*at, "filter", "sha256"), f"{shown(obj)} has sha256 {hashlib.sha256(data).hexdigest()}"))
    vf = doc.get("vlan_filter")
    if isinstance(vf, str):
        try:
            vlans.parse(vf)
        except OSError as exc:
            out.append((("vlan_filter",), f"not a VLAN list ({os.strerror(exc.errno or 22)}): {shown(repr(vf))}"))
    elif isinstance(vf, list) and len(set(vf)) != len(vf):
        out.append((("vlan_filter",), "a VLAN id is listed twice"))
    for i, peer in enumerate(doc.get("peer", [])):
        via = peer.get("via")
        if via is not None and name_problem(via) is not None:
            out.append((("peer", i, "via"), f"not an interface name: {shown(repr(via))}"))
        host = peer["host"]
        if not _is_host(host):
            out.append((("peer", i, "host"), f"not an IPv4 address or host name: {shown(repr(host))}"))
    abi = doc.get("requires", {}).get("abi")
    if abi is not None:
        lo, _, hi = abi.partition("-")
        if hi and int(hi) < int(lo):
            out.append((("requires", "abi"), f"an empty range: {shown(abi)}"))
    return out


def _is_host(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if host[:1].isdigit() and all(label.isdigit() for label in labels):
        return False  # digits and dots that are no IPv4 address
    return all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        for label in labels
    )


def _merge(
    setup: Setup,
    doc: dict[str, Any],
    path: str,
    base: str,
    where: dict[tuple[str | int, ...], int],
    origin: dict[tuple[str | int, ...], tuple[str, int, Any]],
    problems: list[FileProblem],
) -> None:
    """Layer one checked document onto the setup; a key two files set to different values is a problem."""
    from evl_net.kernel import vlans

    def put(key: tuple[str | int, ...], value: Any) -> bool:
        line = linelib.line_of(where, key)
        first = origin.get(key)
        if first is not None and first[2] != value:
            problems.append(FileProblem(path, line, _key(key), f"set to another value in {first[0]}:{first[1]}"))
            return False
        origin.setdefault(key, (path, line, value))
        return True

    for section, target in (("interface", setup.interfaces), ("port", setup.ports)):
        for name, table in doc.get(section, {}).items():
            merged = target.setdefault(name, {})
            for k, v in table.items():
                if k == "filter":  # an object path is the file's: relative to its directory
                    v = {**v, "object": os.path.join(base, v["object"])}
                if put((section, name, k), v):
                    merged[k] = v
    for k, v in doc.get("requires", {}).items():
        if put(("requires", k), v):
            setup.requires[k] = v
    if "vlan_filter" in doc:
        vf = doc["vlan_filter"]
        ids = vlans.parse(vf) if isinstance(vf, str) else frozenset(vf)
        if put(("vlan_filter",), ids):
            setup.vlan_filter = ids
    setup.peers.extend(doc.get("peer", []))


def _key(path: tuple[str | int, ...] | list[str | int]) -> str:
    from evl_core.errors import shown
    from evl_net.schema import key_path

    return shown(key_path(path), limit=200)
