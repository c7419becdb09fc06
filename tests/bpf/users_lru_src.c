/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_lru_src: per-source accounting of untagged IPv4 traffic in a
 * BPF_MAP_TYPE_LRU_HASH of only 4 entries (so new sources evict the least
 * recently used ones), keyed by the IPv4 source address (network byte
 * order, as in the header) with {packets, bytes}.
 * A new source is inserted with BPF_NOEXIST; a known one is bumped with
 * __sync_fetch_and_add (atomic adds: several CPUs may receive at once).
 * bytes counts skb->len, i.e. from the network header on.
 *
 * Verdicts:
 *   untagged IPv4 (source readable)  -> EVL_RX_ACCEPT (1)
 *   anything else                    -> EVL_RX_SKIP   (2)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800

struct src_stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct src_stats);
} lru_src SEC(".maps");

SEC("socket")
int lru_src_rx(struct __sk_buff *skb)
{
	struct src_stats *st, init;
	__u32 saddr;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return EVL_RX_SKIP;
	if (bpf_skb_load_bytes(skb, 12, &saddr, sizeof(saddr)) < 0)
		return EVL_RX_SKIP;

	st = bpf_map_lookup_elem(&lru_src, &saddr);
	if (st) {
		__sync_fetch_and_add(&st->packets, 1);
		__sync_fetch_and_add(&st->bytes, skb->len);
	} else {
		init.packets = 1;
		init.bytes = skb->len;
		bpf_map_update_elem(&lru_src, &saddr, &init, BPF_NOEXIST);
	}

	return EVL_RX_ACCEPT;
}

char _license[] SEC("license") = "GPL";
