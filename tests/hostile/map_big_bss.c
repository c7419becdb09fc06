/* SPDX-License-Identifier: GPL-2.0 */
/* 8 MiB of .bss: a map value larger than the kernel allocates (E2BIG). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static volatile char big[8 << 20];

SEC("socket")
int big_bss(struct __sk_buff *skb)
{
	big[skb->len & 0xff] = 1;
	return big[0];
}

char _license[] SEC("license") = "GPL";
