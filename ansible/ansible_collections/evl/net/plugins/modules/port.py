#!/usr/bin/python
# The out-of-band port of one network interface: enabled or not, with its pool's sizes.
from __future__ import annotations

DOCUMENTATION = r"""
module: port
short_description: Enable or disable the out-of-band port of a network interface of an EVL board
description:
  - Makes the interface O(name) an out-of-band port of the EVL core, or not, as C(evl net -e)
    and C(evl net -d) do.
  - O(pool_size) and O(buffer_size) are the sizes of the socket buffer pool, which a VLAN device
    shares with every port on its real device. When the pool exists with other sizes, it is
    resized; the kernel can only do so by taking every port on the real device down and up, so
    the module does that, installs their eBPF filter again and solicits their peers again, and
    says so in the plan and the diff.
  - Disabling a port drops what the kernel drops with it (its ARP entries; the pool and the
    filter with the last port on the real device).
version_added: 0.1.0
options:
  name:
    description: The network interface (C(eth0), C(eth0.42)).
    type: str
    required: true
    aliases: [interface]
  state:
    description: Whether the interface is an out-of-band port.
    type: str
    choices: [enabled, disabled]
    default: enabled
  pool_size:
    description:
      - The number of socket buffers in the pool (1..32768).
      - When not given, an existing pool is left as it is and a new one gets the kernel's
        default (2048).
    type: int
  buffer_size:
    description:
      - The size of each buffer in bytes, at most 4 pages; the kernel raises it to the real
        device's MTU.
      - When not given, an existing pool is left as it is and a new one gets one page.
    type: int
extends_documentation_fragment:
  - evl.net.board
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  diff_mode:
    support: full
author:
  - evl-tools maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Make eth0.42 an out-of-band port with 4096 buffers
  evl.net.port:
    name: eth0.42
    pool_size: 4096

- name: No out-of-band traffic on eth1
  evl.net.port:
    name: eth1
    state: disabled
"""

RETURN = r"""
port:
  description: The port as the module leaves it (as it would leave it, in check mode).
  returned: success
  type: dict
  contains:
    name:
      description: The interface.
      type: str
      sample: eth0.42
    enabled:
      description: Whether it is an out-of-band port.
      type: bool
      sample: true
    real:
      description: Its real device, whose pool it uses.
      type: str
      sample: eth0
    pool_size:
      description: The number of buffers in the real device's pool (null without a pool).
      type: int
      sample: 4096
    buffer_size:
      description: The size of each buffer (null without a pool).
      type: int
      sample: 4096
plan:
  description: The steps taken (or that would be taken, in check mode), as C(evl net-config plan) prints them.
  returned: always
  type: list
  elements: str
  sample: ["~ port eth0.42: pool 2048 → 4096 (port goes down and up: in-flight oob traffic on eth0.42 is dropped)"]
steps:
  description: The same steps with their status (done, failed, undone, not undone, not run) once applied.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.evl.net.plugins.module_utils.board import BOARD_ARGS, converge, finish, library, open_board


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["interface"]),
            state=dict(type="str", choices=["enabled", "disabled"], default="enabled"),
            pool_size=dict(type="int"),
            buffer_size=dict(type="int"),
            **BOARD_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    for key, low, high in (("pool_size", 1, 32768), ("buffer_size", 1, 1 << 30)):
        if p[key] is not None and (isinstance(p[key], bool) or not low <= p[key] <= high):
            module.fail_json(msg=f"{key} must be in {low}..{high}, not {p[key]}")
    if p["state"] == "disabled" and (p["pool_size"] is not None or p["buffer_size"] is not None):
        module.fail_json(msg="pool_size and buffer_size are for an enabled port (state=enabled)")

    library(module)
    from evl_net.netconfig import edits

    def edit(setup, live):
        if p["state"] == "enabled":
            return edits.enable_port(setup, live, name, p["pool_size"], p["buffer_size"])
        return edits.disable_port(setup, live, name)

    with open_board(module) as board:
        done = converge(module, board, edit=edit)
    finish(module, done, port=edits.port_of(done.end, name))


if __name__ == "__main__":
    main()
