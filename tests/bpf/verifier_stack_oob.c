/* SPDX-License-Identifier: GPL-2.0 */
/* An index into a stack buffer that the packet controls, masked too loosely: it may read past the buffer. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int stack_oob(struct __sk_buff *skb)
{
	volatile __u8 buf[8];
	int i;

#pragma clang loop unroll(full)
	for (i = 0; i < 8; i++)
		buf[i] = i;
	return buf[skb->len & 15];
}

char _license[] SEC("license") = "GPL";
