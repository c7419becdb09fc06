/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Minimal EVL RX filter: hand every frame to the VLAN rules.
 * This is the object of the manual example `evl net -Fnetrx.o -i eth0.42`.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define EVL_RX_VLAN 3	/* apply the VLAN rules */

SEC("socket")
int netrx(struct __sk_buff *skb)
{
	return EVL_RX_VLAN;
}

char _license[] SEC("license") = "GPL";
