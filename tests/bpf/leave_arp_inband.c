/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Leave ARP to the in-band stack, take every IPv4 frame out-of-band
 * whatever its VLAN, let the VLAN rules decide for the rest.
 * skb->protocol is the ethertype in network byte order (__be16).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define EVL_RX_ACCEPT	1
#define EVL_RX_SKIP	2
#define EVL_RX_VLAN	3

#define ETH_P_IP	0x0800
#define ETH_P_ARP	0x0806

SEC("socket")
int leave_arp_inband(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return EVL_RX_SKIP;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return EVL_RX_ACCEPT;

	return EVL_RX_VLAN;
}

char _license[] SEC("license") = "GPL";
