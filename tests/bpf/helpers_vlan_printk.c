/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Parse 802.1Q and 802.1ad (QinQ) headers with bpf_skb_load_bytes() and say
 * with bpf_printk() why a frame is refused.  A socket filter's skb data starts
 * after the Ethernet header: a tagged frame the NIC did not untag has its
 * outer TCI at offset 0.  VID 42 (the inner one under QinQ) goes out-of-band,
 * other tagged frames to the VLAN rules; untagged ones stay in-band.
 * BPF_NO_GLOBAL_DATA keeps bpf_printk()'s format on the stack (no .rodata map).
 */
#define BPF_NO_GLOBAL_DATA
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DROP 0
#define ACCEPT 1
#define SKIP 2
#define VLAN 3

SEC("socket")
int vlan_printk(struct __sk_buff *skb)
{
	__u16 hdr[4]; /* TCI, TPID/type, TCI, type */
	__u16 proto = bpf_ntohs(skb->protocol);
	__u16 tci;
	long err;

	if (proto == ETH_P_8021AD) {
		err = bpf_skb_load_bytes(skb, 0, hdr, 8);
		if (err) {
			bpf_printk("qinq: short header (%ld), len %u", err, skb->len);
			return SKIP;
		}
		if (bpf_ntohs(hdr[1]) != ETH_P_8021Q) {
			bpf_printk("qinq: inner tpid %x is not 802.1Q\n", bpf_ntohs(hdr[1]));
			return DROP;
		}
		tci = bpf_ntohs(hdr[2]);
	} else if (proto == ETH_P_8021Q) {
		err = bpf_skb_load_bytes(skb, 0, hdr, 4);
		if (err) {
			bpf_printk("vlan: short header (%ld)", err);
			return SKIP;
		}
		tci = bpf_ntohs(hdr[0]);
	} else {
		return SKIP;
	}
	if ((tci & 0xfff) == 42)
		return ACCEPT;
	if ((tci & 0xfff) == 0) {
		char why[8] = "refused";

		bpf_printk("vlan: priority tag pcp %d, %s", tci >> 13, why);
		return DROP;
	}
	return VLAN;
}

char _license[] SEC("license") = "GPL";
