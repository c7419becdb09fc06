/* SPDX-License-Identifier: GPL-2.0 */
/* bpf_get_current_pid_tgid(): granted to socket filters, not implemented by the simulator. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int pid(struct __sk_buff *skb)
{
	return bpf_get_current_pid_tgid() & 1 ? 1 : 3;
}

char _license[] SEC("license") = "GPL";
