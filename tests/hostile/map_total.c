/* SPDX-License-Identifier: GPL-2.0 */
/* Five arrays of 60 MiB: each under the simulator's limit of a map, together over that of a filter. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1 << 20); __type(key, __u32); __type(value, char[60]); } a0 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1 << 20); __type(key, __u32); __type(value, char[60]); } a1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1 << 20); __type(key, __u32); __type(value, char[60]); } a2 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1 << 20); __type(key, __u32); __type(value, char[60]); } a3 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1 << 20); __type(key, __u32); __type(value, char[60]); } a4 SEC(".maps");

SEC("socket")
int many_maps(struct __sk_buff *skb)
{
	__u32 k = 0;

	return (bpf_map_lookup_elem(&a0, &k) != 0) + (bpf_map_lookup_elem(&a1, &k) != 0) + (bpf_map_lookup_elem(&a2, &k) != 0) + (bpf_map_lookup_elem(&a3, &k) != 0) + (bpf_map_lookup_elem(&a4, &k) != 0);
}

char _license[] SEC("license") = "GPL";
