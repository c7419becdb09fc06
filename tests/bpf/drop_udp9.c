/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Drop IPv4 UDP datagrams sent to the discard port (9), hand
 * everything else to the VLAN rules.
 *
 * Packet loads are relative to the network header: the MAC header has
 * been pulled (eth_type_trans) before an RX filter runs, and the
 * ethertype is in skb->protocol.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define EVL_RX_DROP	0
#define EVL_RX_VLAN	3

#define ETH_P_IP	0x0800
#define IPPROTO_UDP	17
#define DISCARD_PORT	9

/* LLVM builtins for the classic BPF packet loads (network byte order). */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

SEC("socket")
int drop_udp9(struct __sk_buff *skb)
{
	unsigned long long ihl;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return EVL_RX_VLAN;
	if (load_byte(skb, 9) != IPPROTO_UDP)
		return EVL_RX_VLAN;
	/* Fragments other than the first carry no UDP header. */
	if (load_half(skb, 6) & 0x1fff)
		return EVL_RX_VLAN;

	ihl = (load_byte(skb, 0) & 0x0f) << 2;
	if (load_half(skb, ihl + 2) == DISCARD_PORT)
		return EVL_RX_DROP;

	return EVL_RX_VLAN;
}

char _license[] SEC("license") = "GPL";
