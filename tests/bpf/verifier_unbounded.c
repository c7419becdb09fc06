/* SPDX-License-Identifier: GPL-2.0 */
/* A loop bounded by the packet length only: the kernel's verifier cannot prove that it ends in time. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int unbounded(struct __sk_buff *skb)
{
	volatile __u32 acc = 0;
	__u32 n = skb->len;

#pragma clang loop unroll(disable)
	while (n--)
		acc = acc * 31 + skb->mark;
	return acc & 3;
}

char _license[] SEC("license") = "GPL";
