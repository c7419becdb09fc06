#!/usr/bin/python
# A peer in the out-of-band ARP front cache.
from __future__ import annotations

DOCUMENTATION = r"""
module: peer
short_description: Solicit a peer into an EVL board's out-of-band ARP front cache, or drop it
description:
  - The out-of-band stack sends only to next hops its ARP front cache knows. With
    O(state=present) the module solicits O(address) as C(evl net -s) (C(-S) with
    O(permanent)) does, unless an entry for its next hop is cached already (a permanent one when
    O(permanent) is asked).
  - With O(state=absent), the entry of the address's next hop is dropped. The kernel has no
    request removing one entry, so the module flushes the cache and solicits every other peer
    again, and says so in the plan.
version_added: 0.1.0
options:
  address:
    description: The peer, an IPv4 address or a host name the board resolves.
    type: str
    required: true
    aliases: [host]
  interface:
    description: The out-of-band port to reach it through (the board's routes otherwise).
    type: str
    aliases: [via]
  permanent:
    description: The entry never ages out.
    type: bool
    default: false
  may_route:
    description: The peer may be reached through a gateway (C(evl net -g)); the gateway is then the entry.
    type: bool
    default: false
  state:
    description: Whether the peer's next hop is in the cache.
    type: str
    choices: [present, absent]
    default: present
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
- name: The PTP grandmaster, for good
  evl.net.peer:
    address: 192.168.42.1
    interface: eth0.42
    permanent: true

- name: No entry for the old controller
  evl.net.peer:
    address: 192.168.42.9
    state: absent
"""

RETURN = r"""
route:
  description:
    - Where a solicitation of the address goes, and what the cache holds for it once done
      (in check mode, what it holds now).
  returned: success
  type: dict
  contains:
    ip:
      description: The address.
      type: str
    dev:
      description: The port it goes out through.
      type: str
    nexthop:
      description: The next hop, which is the entry.
      type: str
    cached:
      description: The entry, P (permanent), R (reachable, aging) or empty (none).
      type: str
plan:
  description: The steps taken (or that would be taken, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["+ solicit 192.168.42.1 via eth0.42 (permanent)"]
steps:
  description: The same steps with their status once applied.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.evl.net.plugins.module_utils.board import BOARD_ARGS, converge, finish, open_board


def main():
    module = AnsibleModule(
        argument_spec=dict(
            address=dict(type="str", required=True, aliases=["host"]),
            interface=dict(type="str", aliases=["via"]),
            permanent=dict(type="bool", default=False),
            may_route=dict(type="bool", default=False),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **BOARD_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    with open_board(module) as board:
        from evl_core.errors import EvlError
        from evl_net.netconfig import edits

        wanted = edits.peer(p["address"], p["interface"], p["permanent"], p["may_route"])
        if p["state"] == "present":

            def edit(setup, live):
                return edits.add_peer(setup, wanted)

        else:

            def edit(setup, live):
                return edits.remove_peer(setup, board, wanted)

        done = converge(module, board, edit=edit)
        route = None
        if not done.failed:
            try:
                found = board.peer_route(p["address"], p["interface"], p["permanent"], p["may_route"])
                route = dict(ip=found.ip, dev=found.dev, nexthop=found.nexthop, cached=found.cached)
            except EvlError as exc:
                if p["state"] == "present":
                    module.fail_json(msg=exc.said())
    finish(module, done, route=route)


if __name__ == "__main__":
    main()
