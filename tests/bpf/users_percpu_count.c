/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_percpu_count: classify on the outer ethertype and count the
 * verdicts given in a per-CPU array indexed by verdict (0..3), the way
 * people instrument a filter on a board before trusting it.
 *
 * Verdicts:
 *   IPv4 with at least a 20-byte header   -> EVL_RX_ACCEPT (1)
 *   ARP                                   -> EVL_RX_SKIP   (2)
 *   802.1Q / 802.1ad tagged               -> EVL_RX_VLAN   (3)
 *   anything else (IPv6, runts, ...)      -> EVL_RX_DROP   (0)
 * counts[v] is bumped once per frame given verdict v.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800
#define ETH_P_ARP	0x0806
#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88a8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("socket")
int percpu_count(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u32 verdict;
	__u64 *val;

	if (proto == ETH_P_IP)
		verdict = skb->len >= 20 ? EVL_RX_ACCEPT : EVL_RX_DROP;
	else if (proto == ETH_P_ARP)
		verdict = EVL_RX_SKIP;
	else if (proto == ETH_P_8021Q || proto == ETH_P_8021AD)
		verdict = EVL_RX_VLAN;
	else
		verdict = EVL_RX_DROP;

	val = bpf_map_lookup_elem(&counts, &verdict);
	if (val)
		*val += 1;

	return verdict;
}

char _license[] SEC("license") = "GPL";
