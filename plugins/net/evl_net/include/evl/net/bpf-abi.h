/* SPDX-License-Identifier: MIT */
/*
 * The EVL out-of-band RX filter ABI, for eBPF socket filters installed with
 * `evl net -F<object> -i <ifname>`, as shipped by evl-tools.
 *
 * EVL runs the filter of a port's real device on every frame that device
 * receives while out-of-band diversion is on, and reads the program's return
 * value as one of these verdicts.  Any other value leaves the frame in-band,
 * as EVL_RX_SKIP does.
 *
 * Build a filter without a kernel tree:
 *   clang -O2 -target bpf $(evl sim filter --cflags) -c filter.c -o filter.o
 */
#ifndef _EVL_NET_BPF_ABI_H
#define _EVL_NET_BPF_ABI_H

enum evl_net_rx_action {
	EVL_RX_DROP = 0,	/* drop the frame: it is consumed */
	EVL_RX_ACCEPT = 1,	/* out-of-band, whatever its VLAN tag (IPv4 only; other frames stay in-band) */
	EVL_RX_SKIP = 2,	/* leave the frame to the in-band stack */
	EVL_RX_VLAN = 3,	/* apply the global VLAN filter rules (what happens with no filter) */
};

#endif /* !_EVL_NET_BPF_ABI_H */
