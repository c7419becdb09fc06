/* SPDX-License-Identifier: GPL-2.0 */
/*
 * IPv4 sanity filter exercising loops, the stack and bpf_skb_load_bytes():
 * - not IPv4: leave in-band (SKIP);
 * - truncated header or bad IPv4 header checksum: DROP;
 * - UDP to one of the "small services" ports (echo, discard, chargen,
 *   time): DROP; other UDP: ACCEPT; anything else: VLAN rules.
 * The packet data starts at the network header (the MAC header has been
 * pulled), as in the kernel's RX path.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define EVL_RX_DROP	0
#define EVL_RX_ACCEPT	1
#define EVL_RX_SKIP	2
#define EVL_RX_VLAN	3

#define ETH_P_IP	0x0800
#define IPPROTO_UDP	17
#define NR_PORTS	4

struct iphdr_raw {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

SEC("socket")
int udp_guard(struct __sk_buff *skb)
{
	volatile __u16 ports[NR_PORTS];
	struct iphdr_raw ip;
	__u32 sum = 0, ihl, i;
	__u16 word, udp[4];

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return EVL_RX_SKIP;
	/* Element by element: an initializer would live in .rodata (a map). */
	ports[0] = 7;
	ports[1] = 9;
	ports[2] = 19;
	ports[3] = 37;
	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
		return EVL_RX_DROP;
	ihl = ip.ver_ihl & 0x0f;
	if ((ip.ver_ihl >> 4) != 4 || ihl < 5)
		return EVL_RX_DROP;

	/* One's complement sum of the header, options included. */
#pragma clang loop unroll(disable)
	for (i = 0; i < 30; i++) {
		if (i >= ihl * 2)
			break;
		if (bpf_skb_load_bytes(skb, i * 2, &word, sizeof(word)) < 0)
			return EVL_RX_DROP;
		sum += word;
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	if (sum != 0xffff)
		return EVL_RX_DROP;

	if (ip.protocol != IPPROTO_UDP)
		return EVL_RX_VLAN;
	if (ip.frag_off & bpf_htons(0x1fff))
		return EVL_RX_VLAN;
	if (bpf_skb_load_bytes(skb, ihl * 4, udp, sizeof(udp)) < 0)
		return EVL_RX_DROP;

#pragma clang loop unroll(disable)
	for (i = 0; i < NR_PORTS; i++)
		if (udp[1] == bpf_htons(ports[i]))
			return EVL_RX_DROP;

	return EVL_RX_ACCEPT;
}

char _license[] SEC("license") = "GPL";
