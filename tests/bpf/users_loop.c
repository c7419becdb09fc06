/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_loop: walk up to 2 VLAN tags (802.1Q or 802.1ad) left in the frame
 * with bpf_loop(); the callback peels one tag per iteration and stops at
 * the first non-VLAN ethertype.  The tag depth and the inner ethertype
 * then decide.
 *
 * Verdicts:
 *   untagged IPv4                        -> EVL_RX_ACCEPT (1)
 *   IPv4 under 1 or 2 tags               -> EVL_RX_VLAN   (3)
 *   a tag cut short, or still tagged     -> EVL_RX_DROP   (0)
 *     after 2 tags
 *   anything else                        -> EVL_RX_SKIP   (2)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800
#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88a8
#define MAX_TAGS	2

struct walk_ctx {
	struct __sk_buff *skb;
	__u32 off;
	__u16 proto;
	__u16 depth;
	int err;
};

static long walk_tag(__u32 i, void *data)
{
	struct walk_ctx *w = data;
	__be16 tag[2];

	if (w->proto != ETH_P_8021Q && w->proto != ETH_P_8021AD)
		return 1;	/* stop: not a tag */
	if (bpf_skb_load_bytes(w->skb, w->off, tag, sizeof(tag)) < 0) {
		w->err = 1;
		return 1;
	}
	w->proto = bpf_ntohs(tag[1]);
	w->off += sizeof(tag);
	w->depth++;
	return 0;
}

SEC("socket")
int loop_tags(struct __sk_buff *skb)
{
	struct walk_ctx w = {
		.skb = skb,
		.proto = bpf_ntohs(skb->protocol),
	};

	bpf_loop(MAX_TAGS, walk_tag, &w, 0);

	if (w.err || w.proto == ETH_P_8021Q || w.proto == ETH_P_8021AD)
		return EVL_RX_DROP;
	if (w.proto != ETH_P_IP)
		return EVL_RX_SKIP;
	return w.depth ? EVL_RX_VLAN : EVL_RX_ACCEPT;
}

char _license[] SEC("license") = "GPL";
