/* SPDX-License-Identifier: GPL-2.0 */
/* Direct packet access: socket filters may not read skb->data (the kernel's verifier refuses). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int skb_data(struct __sk_buff *skb)
{
	return *(volatile __u8 *)(long)skb->data;
}

char _license[] SEC("license") = "GPL";
