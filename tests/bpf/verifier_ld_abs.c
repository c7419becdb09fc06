/* SPDX-License-Identifier: GPL-2.0 */
/* Legacy packet loads (BPF_LD_ABS/IND, skb in R6): accept UDP to port 53 (IP header without options). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

SEC("socket")
int dns(struct __sk_buff *skb)
{
	if (load_byte(skb, 9) != 17)
		return 3;
	return load_half(skb, 22) == 53 ? 1 : 3;
}

char _license[] SEC("license") = "GPL";
