/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Accept VLAN 42, drop the other VLANs, VLAN rules for untagged frames;
 * whether the NIC offloaded the tag (skb->vlan_*) or left it in the
 * frame.  The in-band tag is read relative to the MAC header, with a
 * legacy load at SKF_LL_OFF and bpf_skb_load_bytes_relative(), since the
 * skb data starts at the network header.
 */
#include <linux/bpf.h>
#include <linux/filter.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define EVL_RX_DROP	0
#define EVL_RX_ACCEPT	1
#define EVL_RX_VLAN	3

#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88a8
#define VLAN_VID_MASK	0x0fff

unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

SEC("socket")
int mac_vlan42(struct __sk_buff *skb)
{
	__u16 tci;
	__u32 tpid;

	if (skb->vlan_present)
		return (skb->vlan_tci & VLAN_VID_MASK) == 42 ? EVL_RX_ACCEPT : EVL_RX_DROP;

	tpid = load_half(skb, SKF_LL_OFF + 12);
	if (tpid != ETH_P_8021Q && tpid != ETH_P_8021AD)
		return EVL_RX_VLAN;
	if (bpf_skb_load_bytes_relative(skb, 14, &tci, sizeof(tci), BPF_HDR_START_MAC) < 0)
		return EVL_RX_DROP;

	return (bpf_ntohs(tci) & VLAN_VID_MASK) == 42 ? EVL_RX_ACCEPT : EVL_RX_DROP;
}

char _license[] SEC("license") = "GPL";
