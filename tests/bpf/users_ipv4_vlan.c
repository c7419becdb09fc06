/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_ipv4_vlan: IPv4 only, whether the frame is untagged, 802.1Q tagged
 * or 802.1ad (QinQ) double tagged.  Tags the NIC left in the packet are
 * walked with bpf_skb_load_bytes() (offset 0 is right after the Ethernet
 * header: the first tag's TCI, or the network header when untagged).
 * Error paths say why with plain bpf_printk() (format strings in .rodata).
 *
 * Verdicts:
 *   IPv4 (0, 1 or 2 tags) with a sane header  -> EVL_RX_ACCEPT (1)
 *   anything else (ARP, IPv6, ...)            -> EVL_RX_SKIP   (2)
 *   truncated tag / short or bad IPv4 header  -> EVL_RX_DROP   (0)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800
#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88a8

struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

SEC("socket")
int ipv4_vlan(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	struct vlan_tag tag;
	__u32 off = 0;
	__u8 vhl;
	int i;

#pragma unroll
	for (i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if (bpf_skb_load_bytes(skb, off, &tag, sizeof(tag)) < 0) {
			bpf_printk("evl rx: short vlan tag at %u, len %u", off, skb->len);
			return EVL_RX_DROP;
		}
		proto = bpf_ntohs(tag.encap_proto);
		off += sizeof(tag);
	}

	if (proto != ETH_P_IP)
		return EVL_RX_SKIP;

	if (skb->len < off + 20) {
		bpf_printk("evl rx: short ipv4 header at %u, len %u", off, skb->len);
		return EVL_RX_DROP;
	}
	if (bpf_skb_load_bytes(skb, off, &vhl, 1) < 0 || (vhl >> 4) != 4 || (vhl & 0xf) < 5) {
		bpf_printk("evl rx: bad ipv4 version/ihl %x", vhl);
		return EVL_RX_DROP;
	}

	return EVL_RX_ACCEPT;
}

char _license[] SEC("license") = "GPL";
