/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_ringbuf: report IPv4 frames to user space through a
 * BPF_MAP_TYPE_RINGBUF as {saddr (network order), len (skb->len)} events.
 * Untagged frames reserve an event in place, fill it, and submit it for
 * UDP or discard it for anything else; frames under one 802.1Q/802.1ad tag
 * build the event on the stack and copy it with bpf_ringbuf_output().
 *
 * Verdicts:
 *   IPv4, untagged or under one tag  -> EVL_RX_ACCEPT (1)
 *   IPv4 header cut short            -> EVL_RX_DROP   (0)
 *   anything else                    -> EVL_RX_SKIP   (2)
 * Events: untagged IPv4 UDP, and every single-tagged IPv4 frame.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800
#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88a8
#define IPPROTO_UDP	17

struct event {
	__u32 saddr;
	__u32 len;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("socket")
int ringbuf_rx(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	struct event *e, ev;
	__be16 tag[2];
	__u8 iph[20];

	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		if (bpf_skb_load_bytes(skb, 0, tag, sizeof(tag)) < 0)
			return EVL_RX_DROP;
		if (tag[1] != bpf_htons(ETH_P_IP))
			return EVL_RX_SKIP;
		if (bpf_skb_load_bytes(skb, 4, iph, sizeof(iph)) < 0)
			return EVL_RX_DROP;
		__builtin_memcpy(&ev.saddr, &iph[12], sizeof(ev.saddr));
		ev.len = skb->len;
		bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
		return EVL_RX_ACCEPT;
	}

	if (proto != ETH_P_IP)
		return EVL_RX_SKIP;
	if (bpf_skb_load_bytes(skb, 0, iph, sizeof(iph)) < 0)
		return EVL_RX_DROP;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return EVL_RX_ACCEPT;	/* ring full: still take the frame */
	__builtin_memcpy(&e->saddr, &iph[12], sizeof(e->saddr));
	e->len = skb->len;
	if (iph[9] != IPPROTO_UDP)
		bpf_ringbuf_discard(e, 0);
	else
		bpf_ringbuf_submit(e, 0);

	return EVL_RX_ACCEPT;
}

char _license[] SEC("license") = "GPL";
