/* SPDX-License-Identifier: GPL-2.0 */
/*
 * XDP program: a wrong-type object for negative tests, EVL only
 * accepts socket filters.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
