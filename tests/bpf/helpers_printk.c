/* SPDX-License-Identifier: GPL-2.0 */
/* Say what arrives, then leave it to the VLAN rules: the end-to-end bpf_printk() filter. */
#define BPF_NO_GLOBAL_DATA
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("socket")
int printk_rx(struct __sk_buff *skb)
{
	bpf_printk("evl rx: len %u proto %04x ifindex %d", skb->len, bpf_ntohs(skb->protocol), skb->ifindex);
	return 3;
}

char _license[] SEC("license") = "GPL";
