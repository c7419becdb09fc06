/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Call every map-less helper the simulator implements and return a bitmask
 * of what held, so that one verdict checks them all:
 *   bit 0: the clock does not go back, bit 1: the boot clock is not behind it,
 *   bit 2: the coarse clock is set, bit 3: jiffies are past INITIAL_JIFFIES's
 *   low half, bit 4: the CPU number is small, bit 5: the NUMA node is 0,
 *   bit 6: bpf_skb_load_bytes_relative(MAC) reads the EtherType of skb->protocol,
 *   bit 7: (NET) reads the first byte of the network header as load_bytes does,
 *   bit 8: no socket owns the skb (cookie 0), bit 9: its uid is overflowuid.
 * Bits 8-9 depend on the hook: BPF_PROG_TEST_RUN gives its skb a socket.
 * prandom's value is returned in bits 16-31.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int misc(struct __sk_buff *skb)
{
	__u64 t1 = bpf_ktime_get_ns();
	__u64 t2 = bpf_ktime_get_ns();
	__u64 boot = bpf_ktime_get_boot_ns();
	__u64 coarse = bpf_ktime_get_coarse_ns();
	__u64 j = bpf_jiffies64();
	__u32 rnd = bpf_get_prandom_u32();
	__u32 r = 0;
	__u16 type = 0;
	__u8 a = 1, b = 2;

	if (t2 >= t1)
		r |= 1;
	if (boot >= t1)
		r |= 2;
	if (coarse)
		r |= 4;
	if (j > 0xfffb6c20ULL)
		r |= 8;
	if (bpf_get_smp_processor_id() < 4096)
		r |= 16;
	if (bpf_get_numa_node_id() == 0)
		r |= 32;
	if (bpf_skb_load_bytes_relative(skb, 12, &type, 2, BPF_HDR_START_MAC) == 0 && type == skb->protocol)
		r |= 64;
	if (bpf_skb_load_bytes_relative(skb, 0, &a, 1, BPF_HDR_START_NET) == 0 &&
	    bpf_skb_load_bytes(skb, 0, &b, 1) == 0 && a == b)
		r |= 128;
	if (bpf_get_socket_cookie(skb) == 0)
		r |= 256;
	if (bpf_get_socket_uid(skb) == 65534)
		r |= 512;
	return r | (rnd & 0xffff0000);
}

char _license[] SEC("license") = "GPL";
