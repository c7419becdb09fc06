/* SPDX-License-Identifier: GPL-2.0 */
/* Calls helper #9999, which no kernel has: the verifier says "invalid func unknown#9999". */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static long (*bogus_helper)(void) = (void *)9999;

SEC("socket")
int unknown_helper(struct __sk_buff *skb)
{
	return bogus_helper() ? 3 : 0;
}

char _license[] SEC("license") = "GPL";
