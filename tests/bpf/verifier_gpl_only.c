/* SPDX-License-Identifier: MIT */
/* bpf_trace_printk() is GPL-only: a program under another license may not call it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int printk(struct __sk_buff *skb)
{
	char fmt[4] = {'%', 'u', '\n', 0};

	bpf_trace_printk(fmt, sizeof(fmt), skb->len);
	return 3;
}

char _license[] SEC("license") = "MIT";
