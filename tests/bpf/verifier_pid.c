/* SPDX-License-Identifier: GPL-2.0 */
/* bpf_get_ns_current_pid_tgid(): granted to socket filters, not implemented by the simulator. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int pid(struct __sk_buff *skb)
{
	struct bpf_pidns_info ns = {};

	bpf_get_ns_current_pid_tgid(0, 0, &ns, sizeof(ns));
	return ns.pid & 1 ? 1 : 3;
}

char _license[] SEC("license") = "GPL";
