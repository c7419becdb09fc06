/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A bounded loop the verifier must accept (kernels >= 5.3 walk it one
 * iteration at a time): XOR of the first 16 bytes of the network header,
 * read with bpf_skb_load_bytes() into a stack buffer; an odd result is
 * accepted, an even one follows the VLAN rules.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int xor16(struct __sk_buff *skb)
{
	__u8 buf[16];
	__u8 acc = 0;
	int i;

	if (bpf_skb_load_bytes(skb, 0, buf, sizeof(buf)) < 0)
		return 2;
#pragma clang loop unroll(disable)
	for (i = 0; i < 16; i++)
		acc ^= buf[i];
	return acc & 1 ? 1 : 3;
}

char _license[] SEC("license") = "GPL";
