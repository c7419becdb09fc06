/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Accept frames tagged with 802.1Q VLAN id 42, skip everything else.
 * Uses the offloaded tag in __sk_buff, which is how a VLAN-accelerated
 * NIC delivers it (the tag is no longer in the packet bytes).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define EVL_RX_ACCEPT	1
#define EVL_RX_SKIP	2
#define VLAN_VID_MASK	0x0fff

SEC("socket")
int accept_vlan42(struct __sk_buff *skb)
{
	if (skb->vlan_present && (skb->vlan_tci & VLAN_VID_MASK) == 42)
		return EVL_RX_ACCEPT;

	return EVL_RX_SKIP;
}

char _license[] SEC("license") = "GPL";
