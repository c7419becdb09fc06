/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_accept_all: the simplest EVL RX filter people start with: take
 * every frame out-of-band.
 *
 * Verdicts: every frame -> EVL_RX_ACCEPT (1).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <evl/net/bpf-abi.h>

SEC("socket")
int accept_all(struct __sk_buff *skb)
{
	return EVL_RX_ACCEPT;
}

char _license[] SEC("license") = "GPL";
