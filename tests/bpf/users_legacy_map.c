/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_legacy_map: an old-style filter with a legacy
 * `struct bpf_map_def SEC("maps")` map, as still found in board support
 * packages.  NOTE: libbpf >= 1.0 refuses legacy map definitions (the
 * "maps" section) at open time; use BTF-defined maps in SEC(".maps")
 * instead.  It is kept to check that it still compiles and that the
 * refusal is reported.  libbpf 1.0 also dropped struct bpf_map_def from
 * <bpf/bpf_helpers.h>, hence the local definition.
 *
 * Verdicts: IPv4 -> EVL_RX_ACCEPT (1), else EVL_RX_SKIP (2); hits[0]
 * counts the IPv4 frames.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") hits = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

SEC("socket")
int legacy_map(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *val;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return EVL_RX_SKIP;
	val = bpf_map_lookup_elem(&hits, &key);
	if (val)
		__sync_fetch_and_add(val, 1);
	return EVL_RX_ACCEPT;
}

char _license[] SEC("license") = "GPL";
