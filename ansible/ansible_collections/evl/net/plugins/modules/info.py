#!/usr/bin/python
# What a board's out-of-band stack is doing, as facts.
from __future__ import annotations

DOCUMENTATION = r"""
module: info
short_description: Gather an EVL board's out-of-band network state as facts
description:
  - Reads the board's out-of-band ports with their statistics and pools, the RX VLAN filter,
    the out-of-band ARP front cache, what is known of each real device's eBPF filter and the ABI
    of its EVL core, and returns them as C(ansible_facts.evl_net). Nothing is changed, so it
    runs in check mode too.
version_added: 0.1.0
options: {}
extends_documentation_fragment:
  - evl.net.board
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ansible.builtin.action_common_attributes.facts
attributes:
  diff_mode:
    support: none
  facts:
    support: full
author:
  - evl-tools maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the boards
  evl.net.info:

- name: Boards whose pool ran dry
  ansible.builtin.debug:
    msg: "{{ item.key }}: rx nomem {{ item.value.rx_nomem }}"
  loop: "{{ ansible_facts.evl_net.ports | dict2items }}"
  when: item.value.rx_nomem > 0
"""

RETURN = r"""
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    evl_net:
      description: The board's out-of-band state.
      type: dict
      contains:
        abi:
          description: The ABI revisions the EVL core speaks (C(base), C(current)).
          type: dict
          sample: {"base": 19, "current": 19}
        transport:
          description: The transport that read the board (C(ioctl) or C(sim)).
          type: str
        ports:
          description:
            - The out-of-band ports by name, each with its real device, its pool (C(pool_size),
              C(buffer_size), C(skb_free)) and the counters C(evl net -Q) prints (C(rx_packets),
              C(rx_bytes), C(tx_packets), C(tx_bytes), C(csum_errors), C(rx_nomem), C(tx_nomem)).
          type: dict
        interfaces:
          description:
            - Every network interface, as C(evl net -Q --all-interfaces --json) lists them, with
              C(parent), C(vlan_id), C(mtu) and C(addresses).
          type: list
          elements: dict
        vlan_filter:
          description: The RX VLAN filter in the kernel's list syntax (empty when none).
          type: str
        vlan_ids:
          description: The same, as a list of ids.
          type: list
          elements: int
        arp_cache:
          description: The out-of-band ARP front cache (C(dev), C(ip), C(mac), C(permanent)).
          type: list
          elements: dict
        filters:
          description:
            - What is known of each real device's eBPF RX filter, by real device (C(installed) is
              null when the board cannot tell).
          type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.evl.net.plugins.module_utils.board import BOARD_ARGS, open_board


def main():
    module = AnsibleModule(argument_spec=dict(**BOARD_ARGS), supports_check_mode=True)
    with open_board(module) as board:
        from evl_core.errors import EvlError
        from evl_net.kernel import vlans

        try:
            facts = gather(board, vlans)
        except EvlError as exc:
            module.fail_json(msg=exc.said())
    module.exit_json(changed=False, ansible_facts={"evl_net": facts})


def gather(board, vlans):
    abi = board.core_abi()
    links = {link.name: link for link in board.links()}
    queried = {row["ifname"]: row for row in board.query_all().to_json()["interfaces"]}
    interfaces, ports, filters = [], {}, {}
    for name, row in queried.items():
        link = links.get(name)
        extra = {}
        if link is not None:
            extra = dict(parent=link.parent, vlan_id=link.vlan_id, mtu=link.mtu, addresses=list(link.addresses))
        interfaces.append(dict(row, **extra))
        if row.get("oob_port"):
            real = link.parent if link is not None and link.parent else name
            counters = {k: v for k, v in row.items() if k not in ("ifname", "skb_total", "skb_size")}
            ports[name] = dict(counters, real=real, pool_size=row["skb_total"], buffer_size=row["skb_size"])
            if real not in filters:
                state = board.filter_state(name)
                filters[real] = dict(
                    installed=state.installed, object=state.object, sha256=state.sha256, program=state.program
                )
    ids = sorted(vlans.parse(board.get_vlans()))
    return dict(
        abi=dict(base=abi.base, current=abi.current),
        transport=board.transport.name,
        ports=ports,
        interfaces=interfaces,
        vlan_filter=vlans.format(ids),
        vlan_ids=ids,
        arp_cache=[dict(dev=e.dev, ip=e.ip, mac=e.mac, permanent=e.permanent) for e in board.arp_cache()],
        filters=filters,
    )


if __name__ == "__main__":
    main()
