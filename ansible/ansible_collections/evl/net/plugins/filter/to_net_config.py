# An inventory dict rendered as an evl net-config file (TOML), for the evl.net.board role.
from __future__ import annotations

DOCUMENTATION = r"""
name: to_net_config
short_description: Render a dict as an evl net-config file (TOML)
version_added: 0.1.0
description:
  - Writes data (the tables of an C(evl net-config) file, as YAML) as the TOML text of that file,
    as C(evl-net-config(5)) describes it; the C(evl.net.board) role writes C(/etc/evl/net.toml) with it.
  - Strings are TOML basic strings (JSON-escaped; control characters and DEL as C(\uXXXX)); integers,
    floats and booleans are TOML's; lists are inline arrays; a dict is a C([section."name"]) table and a
    list of dicts an array of tables (C([[peer]])); a dict inside a list is an inline table.
  - Keys that are not bare TOML keys (letters, digits, C(_), C(-)) are quoted (C([port."eth0.42"])).
  - TOML has no null, so a C(null) value is an error naming its key; keys must be strings.
  - The text only says what the data says; whether it is a valid setup is for
    C(evl net-config validate) to tell.
positional: _input
options:
  _input:
    description: The setup, a dict of the file's keys and tables.
    type: dict
    required: true
author:
  - evl-tools maintainers
"""

EXAMPLES = r"""
- name: The board's net-config file from an inventory variable
  ansible.builtin.copy:
    content: "{{ evl_net_config | evl.net.to_net_config }}"
    dest: /etc/evl/net.toml
    mode: "0644"
  vars:
    evl_net_config:
      vlan_filter: "42"
      port:
        eth0.42: {pool: 4096}
      peer:
        - {host: 10.10.10.10, via: eth0.42, permanent: true}
# The file written:
#   vlan_filter = "42"
#
#   [port."eth0.42"]
#   pool = 4096
#
#   [[peer]]
#   host = "10.10.10.10"
#   via = "eth0.42"
#   permanent = true
"""

RETURN = r"""
_value:
  description: The TOML text, ending with a newline.
  type: string
"""

import datetime
import json
import math
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(key, where):
    if not isinstance(key, str):
        raise AnsibleFilterError(f"to_net_config: key {key!r} in {where or 'the top level'} is not a string")
    return key if BARE.fullmatch(key) else _string(key)


def _string(text):
    # JSON's escapes are TOML's; TOML also wants DEL escaped, and no surrogate pairs (so no ensure_ascii).
    return json.dumps(str(text), ensure_ascii=False).replace("\x7f", "\\u007f")


def _is_table_array(value):
    return _is_list(value) and len(value) > 0 and all(isinstance(v, Mapping) for v in value)


def _is_list(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _value(value, where):
    if value is None:
        raise AnsibleFilterError(f"to_net_config: {where} is null, which a TOML file cannot say")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(float(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = [f"{_key(k, where)} = {_value(v, _join(where, k))}" for k, v in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if _is_list(value):
        return "[" + ", ".join(_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if isinstance(value, (datetime.date, datetime.time)):
        kind = "a date or time"  # TOML has them, a net-config file has no key taking one (quote it for a string)
    else:
        kind = f"a {type(value).__name__.lstrip('_')}"
    raise AnsibleFilterError(f"to_net_config: {where} is {kind}, which a net-config file cannot say")


def _table(lines, table, keys, where, header):
    """``table``'s keys, then its sub-tables and arrays of tables, under the TOML ``header`` line.

    ``keys`` name the table in TOML (an array's last item is named by the array), ``where`` in messages.
    """
    plain = [(k, v) for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)]
    nested = [(k, v) for k, v in table.items() if isinstance(v, Mapping) or _is_table_array(v)]
    if header and (plain or not nested):  # a table holding only tables needs no header of its own
        if lines:
            lines.append("")
        lines.append(header)
    for k, v in plain:
        lines.append(f"{_key(k, where)} = {_value(v, _join(where, k))}")
    for k, v in nested:
        name = ".".join(_key(p, where) for p in [*keys, k])
        if isinstance(v, Mapping):
            _table(lines, v, [*keys, k], _join(where, k), f"[{name}]")
            continue
        for i, item in enumerate(v):
            if lines:
                lines.append("")
            lines.append(f"[[{name}]]")
            _table(lines, item, [*keys, k], f"{_join(where, k)}[{i}]", None)


def _join(where, key):
    return f"{where}.{key}" if where else str(key)


def to_net_config(data):
    """The evl net-config (TOML) text that says ``data``."""
    if not isinstance(data, Mapping):
        raise AnsibleFilterError(f"to_net_config: the setup must be a dict, not a {type(data).__name__}")
    lines = []
    _table(lines, data, [], "", None)
    return "\n".join(lines) + "\n" if lines else ""


class FilterModule:
    def filters(self):
        return {"to_net_config": to_net_config}
