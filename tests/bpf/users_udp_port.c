/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_udp_port: take IPv4 UDP datagrams for destination ports 7000-7099
 * out-of-band (the port range of a real-time application), leave the rest
 * to the in-band stack.  Honours the IHL (IP options) and an optional
 * single 802.1Q tag left in the frame; non-first fragments are skipped.
 *
 * Verdicts:
 *   IPv4 UDP, dport 7000..7099                 -> EVL_RX_ACCEPT (1)
 *   any other frame                            -> EVL_RX_SKIP   (2)
 *   IPv4 with IHL < 5 or truncated headers     -> EVL_RX_DROP   (0)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800
#define ETH_P_8021Q	0x8100
#define IPPROTO_UDP	17
#define PORT_LO		7000
#define PORT_HI		7099

SEC("socket")
int udp_port(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u8 iph[20];
	__be16 hdr[2];
	__u32 off = 0, ihl;
	__u16 dport;

	if (proto == ETH_P_8021Q) {
		if (bpf_skb_load_bytes(skb, 0, hdr, sizeof(hdr)) < 0)
			return EVL_RX_DROP;
		proto = bpf_ntohs(hdr[1]);
		off = 4;
	}
	if (proto != ETH_P_IP)
		return EVL_RX_SKIP;

	if (bpf_skb_load_bytes(skb, off, iph, sizeof(iph)) < 0)
		return EVL_RX_DROP;
	ihl = (iph[0] & 0x0f) * 4;
	if ((iph[0] >> 4) != 4 || ihl < 20)
		return EVL_RX_DROP;
	if (iph[9] != IPPROTO_UDP)
		return EVL_RX_SKIP;
	/* fragment offset != 0: no UDP header here */
	if (((iph[6] & 0x1f) << 8 | iph[7]) != 0)
		return EVL_RX_SKIP;

	if (bpf_skb_load_bytes(skb, off + ihl, hdr, sizeof(hdr)) < 0)
		return EVL_RX_DROP;
	dport = bpf_ntohs(hdr[1]);
	if (dport >= PORT_LO && dport <= PORT_HI)
		return EVL_RX_ACCEPT;

	return EVL_RX_SKIP;
}

char _license[] SEC("license") = "GPL";
