/* SPDX-License-Identifier: MIT */
/*
 * The EVL kernel interface used by `evl net`, written by the evl-tools
 * project from the ABI facts it collected (docs/abi.md,
 * "Requests"): the uapi structs and request macros, in C, so that gcc computes
 * the sizes, offsets and numbers that tests/test_abi.py compares with
 * evl_net.abi.  Not a copy of the kernel headers.
 */
#ifndef EVL_TOOLS_TEST_EVL_ABI_H
#define EVL_TOOLS_TEST_EVL_ABI_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/socket.h>	/* struct __kernel_sockaddr_storage */

/* -- control (include/uapi/evl/control-abi.h) -- */

#define EVL_CONTROL_DEV		"/dev/evl/control"
#define EVL_CONTROL_IOCBASE	'C'

struct evl_core_info {
	__u32 abi_base;
	__u32 abi_current;
	__u32 fpu_features;
	__u64 shm_size;
};

#define EVL_CTLIOC_GET_COREINFO	_IOR(EVL_CONTROL_IOCBASE, 0, struct evl_core_info)

/* -- net (include/uapi/evl/net/net-abi.h, device-abi.h, socket-abi.h) -- */

#define EVL_NET_DEV		"net"
#define EVL_NET_IOCBASE		0xf0	/* defined, used by no request */
#define EVL_NETDEV_IOCBASE	0xef
#define EVL_SOCKET_IOCBASE	0xee

struct evl_net_devopen {
	__u64 name_ptr;		/* const char *ifname */
	__s32 fd;		/* [out] */
};

#define EVL_NETIOC_DEVOPEN	_IOWR(EVL_NETDEV_IOCBASE, 0, struct evl_net_devopen)

struct evl_net_devparams {
	__u64 poolsz;
	__u64 bufsz;
};

struct evl_net_devstat {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
	__u32 skb_size;
	__u32 skb_free;
	__u32 skb_total;
	__u32 csum_errors;
	__u32 rx_nomem;
	__u32 tx_nomem;
	union {
		struct {
			__u32 oob_capable:1;
			__u32 oob_port:1;
		};
		__u32 __flags;
	};
};

#define EVL_NDEVIOC_SETRXEBPF	_IOW(EVL_NETDEV_IOCBASE, 0, __s32)
#define EVL_NDEVIOC_SETPORT	_IOW(EVL_NETDEV_IOCBASE, 1, struct evl_net_devparams)
#define EVL_NDEVIOC_GETSTAT	_IOW(EVL_NETDEV_IOCBASE, 2, struct evl_net_devstat)

struct evl_net_solicit {
	struct __kernel_sockaddr_storage addr;
	__u32 flags;
};

#define EVL_NEIGH_PERMANENT	0x1
#define EVL_NEIGH_MAYROUTE	0x2

#define EVL_SOCKIOC_SOLICIT	_IOW(EVL_SOCKET_IOCBASE, 5, struct evl_net_solicit)

/* SOCK_OOB = O_OOB: bit 29 on the newest EVL trees, bit 30 before. */
#define SOCK_OOB_NEWEST		(1 << 29)
#define SOCK_OOB_OLDER		010000000000

/* -- G2/G3 requests, for reference (not used by evl-tools) -- */

struct evl_net_g2_openport {
	__u64 name_ptr;
	__u64 poolsz;
	__u64 bufsz;
	__s32 fd;
};

#define EVL_NET_GETDEVFD	_IOWR(EVL_NETDEV_IOCBASE, 0, struct evl_net_devopen)
#define EVL_NET_OPENPORT	_IOWR(EVL_NETDEV_IOCBASE, 1, struct evl_net_g2_openport)
#define EVL_NDEVIOC_SWITCHOFF	_IO(EVL_NETDEV_IOCBASE, 1)

#endif /* EVL_TOOLS_TEST_EVL_ABI_H */
