#!/usr/bin/python
# A whole evl net-config setup applied to a board.
from __future__ import annotations

DOCUMENTATION = r"""
module: config
short_description: Apply an evl net-config setup to an EVL board
description:
  - Brings the board's whole out-of-band network setup (interfaces, ports, pools, RX VLAN
    filter, eBPF filters, peers) to an C(evl net-config) setup, as C(evl net-config apply)
    does; see C(evl-net-config(5)) for the file and what a file leaves out.
  - The setup is one or more files (O(src), on the controller; O(path), on the board) or inline
    data (O(config)); several are layered in order.
  - In check mode the module reports the plan (what C(evl net-config plan) prints) and changes
    nothing. The diff is the board's setup before and after, as C(evl net-config export) writes it.
  - The steps run in dependency order under the board's lock; when one fails, the board is
    restored to where it started (unless O(rollback=false)) and the task fails saying so.
version_added: 0.1.0
options:
  src:
    description:
      - An C(evl net-config) file (TOML), or a directory of them (C(*.toml), in name order), on the
        controller.
    type: path
  path:
    description: C(evl net-config) files or directories on the board (C(/etc/evl/net.d)).
    type: list
    elements: path
  config:
    description:
      - The setup itself, as data (the file's tables as YAML); layered after O(src) and O(path).
    type: dict
  base_dir:
    description:
      - The directory on the board that relative eBPF object paths in O(src) and O(config) are
        taken from (a file of O(path) has its own directory).
    type: path
    default: /etc/evl/net.d
  rollback:
    description: When a step fails, restore the board to where it started.
    type: bool
    default: true
extends_documentation_fragment:
  - evl.net.board
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  diff_mode:
    support: full
author:
  - evl-tools maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The line's setup, from the playbook's files/
  evl.net.config:
    src: net/line3.toml

- name: Inline
  evl.net.config:
    config:
      vlan_filter: "42"
      interface:
        eth0.42: {parent: eth0, vlan_id: 42, up: true, addresses: [192.168.42.10/24]}
      port:
        eth0.42: {pool: 4096}
      peer:
        - {host: 192.168.42.1, via: eth0.42, permanent: true}
"""

RETURN = r"""
plan:
  description: The steps taken (or that would be taken, in check mode), as C(evl net-config plan) prints them.
  returned: always
  type: list
  elements: str
  sample: ["+ create vlan eth0.42 (eth0, id 42)", "+ port eth0.42 (pool 4096)"]
steps:
  description: Each step, with its status (done, failed, undone, not undone, not run) once applied.
  returned: always
  type: list
  elements: dict
problems:
  description: What keeps the setup from being planned on this board, one line each.
  returned: always
  type: list
  elements: str
rolled_back:
  description: Whether a failed step made the module restore the board.
  returned: always
  type: bool
rollback_failures:
  description: What the rollback could not restore, one line each.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.evl.net.plugins.module_utils.board import BOARD_ARGS, converge, finish, library, open_board


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path"),
            path=dict(type="list", elements="path"),
            config=dict(type="dict"),
            base_dir=dict(type="path", default="/etc/evl/net.d"),
            rollback=dict(type="bool", default=True),
            _content=dict(type="list", elements="dict", no_log=False),
            **BOARD_ARGS,
        ),
        required_one_of=[("src", "path", "config", "_content")],
        supports_check_mode=True,
    )
    p = module.params
    if p["src"] is not None and p["_content"] is None:
        module.fail_json(msg="src is read by the evl.net.config action plugin: run the module as a task")
    if not os.path.isabs(p["base_dir"]):
        module.fail_json(msg=f"base_dir must be an absolute path on the board, not {p['base_dir']!r}")
    library(module)
    from evl_net import netconfig

    sources = []
    for item in p["_content"] or ():
        name, text = item.get("name"), item.get("text")
        if not isinstance(name, str) or not isinstance(text, str):
            module.fail_json(msg="_content: entries are {name, text} strings")
        sources.append((name, text, p["base_dir"]))
    sources += netconfig.sources_of(p["path"] or [])
    if p["config"] is not None:
        sources.append(("config", p["config"], p["base_dir"]))
    setup, problems = netconfig.read_sources(sources)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        module.fail_json(msg=f"invalid setup: {problems[0]}{more}", problems=[str(x) for x in problems])
    with open_board(module) as board:
        done = converge(module, board, setup=setup, rollback=p["rollback"])
    finish(module, done)


if __name__ == "__main__":
    main()
