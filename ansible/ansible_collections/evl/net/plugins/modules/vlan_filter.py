#!/usr/bin/python
# The global RX VLAN filter of the EVL core's out-of-band stack.
from __future__ import annotations

DOCUMENTATION = r"""
module: vlan_filter
short_description: Set the global RX VLAN filter of an EVL board's out-of-band stack
description:
  - The EVL core diverts to the out-of-band stack only the frames of the VLANs in one global
    filter (C(evl net -N), shown by C(evl net -n)). This module sets it.
  - With O(state=present) the filter holds exactly O(vlans), or O(vlans) added to what it holds
    with O(append=true). With O(state=absent), O(vlans) are taken out of it, or the filter is
    cleared when O(vlans) is not given.
version_added: 0.1.0
options:
  vlans:
    description:
      - VLAN ids (2..4094), as a list of integers or in the kernel's list syntax (C(42,55-57)).
    type: raw
  state:
    description: Whether O(vlans) are in the filter.
    type: str
    choices: [present, absent]
    default: present
  append:
    description: With O(state=present), add O(vlans) to the filter rather than making it exactly O(vlans).
    type: bool
    default: false
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
- name: Out-of-band traffic on VLANs 41, 42 and 55 to 57
  evl.net.vlan_filter:
    vlans: 41,42,55-57

- name: Also VLAN 100
  evl.net.vlan_filter:
    vlans: [100]
    append: true

- name: No VLAN filter
  evl.net.vlan_filter:
    state: absent
"""

RETURN = r"""
vlans:
  description: The filter as the module leaves it, in the kernel's list syntax (empty when cleared).
  returned: success
  type: str
  sample: 41-42,55-57
vlan_ids:
  description: The same, as a sorted list of ids.
  returned: success
  type: list
  elements: int
  sample: [41, 42, 55, 56, 57]
plan:
  description: The step taken (or that would be taken, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["~ vlan filter none → 41-42,55-57"]
steps:
  description: The same steps with their status once applied.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.evl.net.plugins.module_utils.board import BOARD_ARGS, converge, finish, library, open_board


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vlans=dict(type="raw"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            append=dict(type="bool", default=False),
            **BOARD_ARGS,
        ),
        required_if=[("state", "present", ("vlans",))],
        supports_check_mode=True,
    )
    p = module.params
    library(module)
    from evl_net.kernel import vlans as syntax
    from evl_net.netconfig import edits

    ids = parse(module, p["vlans"], syntax)
    if p["append"] and p["state"] != "present":
        module.fail_json(msg="append is for state=present")

    def edit(setup, live):
        if p["state"] == "absent":
            return edits.set_vlans(setup, live.vlans - ids if p["vlans"] is not None else frozenset())
        return edits.set_vlans(setup, live.vlans | ids if p["append"] else ids)

    with open_board(module) as board:
        done = converge(module, board, edit=edit)
    now = sorted(done.end.vlans) if done.end is not None else None
    finish(module, done, vlans=None if now is None else syntax.format(now), vlan_ids=now)


def parse(module, value, syntax):
    """The ids of ``vlans``: a list of ints, one int, or the kernel's list syntax; each in 2..4094.

    0, 1 and 4095 are refused as ``evl net -N`` and net-config files refuse them.
    """
    if value is None:
        return frozenset()
    if isinstance(value, bool):
        module.fail_json(msg=f"vlans must be a list of VLAN ids or a VLAN list, not {value!r}")
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        if not value or not all(c in "0123456789,-" for c in value):
            module.fail_json(msg=f"invalid VLAN list {value!r}: expected ids 2..4094 as in 42,55-57")
        try:
            ids = syntax.parse(value)
        except OSError:
            module.fail_json(msg=f"invalid VLAN list {value!r}: expected ids 2..4094 as in 42,55-57")
        value = sorted(ids)
    if not isinstance(value, list):
        module.fail_json(msg=f"vlans must be a list of VLAN ids or a VLAN list, not {type(value).__name__}")
    ids = set()
    for item in value:
        if isinstance(item, str) and item.isascii() and item.strip().isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 2 <= item <= 4094:
            module.fail_json(msg=f"invalid VLAN id {item!r}: expected an integer in 2..4094")
        ids.add(item)
    return frozenset(ids)


if __name__ == "__main__":
    main()
