/* SPDX-License-Identifier: GPL-2.0 */
/* An array of 2^28 u64 (2 GiB): the kernel may allocate it, the simulator will not. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 28);
	__type(key, __u32);
	__type(value, __u64);
} huge SEC(".maps");

SEC("socket")
int huge_array(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&huge, &k);

	return v ? 1 : 2;
}

char _license[] SEC("license") = "GPL";
