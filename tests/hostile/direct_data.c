/* SPDX-License-Identifier: GPL-2.0 */
/* Direct packet access through skb->data: not allowed for socket filters ("invalid bpf_context access"). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int direct_data(struct __sk_buff *skb)
{
	unsigned char *data = (unsigned char *)(long)skb->data;
	unsigned char *end = (unsigned char *)(long)skb->data_end;

	if (data + 1 > end)
		return 3;
	return data[0] == 0x45 ? 1 : 3;
}

char _license[] SEC("license") = "GPL";
