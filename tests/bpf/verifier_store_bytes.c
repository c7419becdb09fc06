/* SPDX-License-Identifier: GPL-2.0 */
/* bpf_skb_store_bytes() is not granted to socket filters: the kernel's verifier refuses the call. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int store_bytes(struct __sk_buff *skb)
{
	__u8 zero = 0;

	bpf_skb_store_bytes(skb, 0, &zero, 1, 0);
	return 1;
}

char _license[] SEC("license") = "GPL";
