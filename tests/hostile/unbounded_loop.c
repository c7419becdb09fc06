/* SPDX-License-Identifier: GPL-2.0 */
/* A loop the verifier cannot bound ("infinite loop detected" / too many states). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int unbounded_loop(struct __sk_buff *skb)
{
	volatile __u32 n = skb->len;

	while (n != 0)
		n++;
	return 3;
}

char _license[] SEC("license") = "GPL";
