/* SPDX-License-Identifier: GPL-2.0 */
/* An LPM trie: a map type the simulator does not implement. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct key {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct key);
	__type(value, __u32);
} trie SEC(".maps");

SEC("socket")
int lpm(struct __sk_buff *skb)
{
	struct key k = { 32, 0 };
	__u32 *v = bpf_map_lookup_elem(&trie, &k);

	return v ? *v : 2;
}

char _license[] SEC("license") = "GPL";
