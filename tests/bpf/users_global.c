/* SPDX-License-Identifier: GPL-2.0 */
/*
 * users_global: global variables as libbpf maps them: a frame counter and
 * a match counter in .bss, the UDP port to take in .rodata (const
 * volatile, so a loader could patch it before load), and the verdict for a
 * match in .data (non-zero initial value).  Untagged frames only.
 *
 * Verdicts:
 *   untagged IPv4 UDP to `port` (7000), no IP options -> match_verdict
 *                                                       (.data, EVL_RX_ACCEPT = 1)
 *   anything else                                     -> EVL_RX_SKIP (2)
 * seen counts every frame, matched the matches.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <evl/net/bpf-abi.h>

#define ETH_P_IP	0x0800
#define IPPROTO_UDP	17

static __u64 seen;			/* .bss */
__u64 matched = 0;			/* .bss */
const volatile __u16 port = 7000;	/* .rodata */
__u32 match_verdict = EVL_RX_ACCEPT;	/* .data */

SEC("socket")
int global_vars(struct __sk_buff *skb)
{
	__u8 iph[24];
	__be16 dport;

	__sync_fetch_and_add(&seen, 1);

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return EVL_RX_SKIP;
	if (bpf_skb_load_bytes(skb, 0, iph, sizeof(iph)) < 0)
		return EVL_RX_SKIP;
	if (iph[0] != 0x45 || iph[9] != IPPROTO_UDP)
		return EVL_RX_SKIP;
	__builtin_memcpy(&dport, &iph[22], sizeof(dport));
	if (bpf_ntohs(dport) != port)
		return EVL_RX_SKIP;

	__sync_fetch_and_add(&matched, 1);
	return match_verdict;
}

char _license[] SEC("license") = "GPL";
