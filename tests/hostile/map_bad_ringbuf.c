/* SPDX-License-Identifier: GPL-2.0 */
/* A ring buffer of 1000 bytes: not a power of 2, BPF_MAP_CREATE fails with EINVAL. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1000);
} rb SEC(".maps");

SEC("socket")
int bad_ringbuf(struct __sk_buff *skb)
{
	__u64 v = skb->len;

	bpf_ringbuf_output(&rb, &v, sizeof(v), 0);
	return 1;
}

char _license[] SEC("license") = "GPL";
