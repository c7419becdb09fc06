/* SPDX-License-Identifier: MIT */
/*
 * Print what the C compiler makes of tests/abi/evl_abi.h, one fact a line:
 *   size <struct> <bytes>
 *   offset <struct> <field> <bytes>
 *   request <name> <hex>
 *   const <name> <hex>
 *   flag <struct> <bitfield> <mask in the containing u32>
 * tests/test_abi.py compares every line with evl_net.kernel.abi.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "evl_abi.h"

#define SIZE(s)		printf("size %s %zu\n", #s, sizeof(struct s))
#define OFFSET(s, f)	printf("offset %s %s %zu\n", #s, #f, offsetof(struct s, f))
#define OFFSET_AS(s, f, label)	printf("offset %s %s %zu\n", #s, label, offsetof(struct s, f))
#define REQUEST(r)	printf("request %s 0x%08lx\n", #r, (unsigned long)(r))
#define CONST(c)	printf("const %s 0x%lx\n", #c, (unsigned long)(c))

int main(void)
{
	struct evl_net_devstat st;

	SIZE(evl_core_info);
	OFFSET(evl_core_info, abi_base);
	OFFSET(evl_core_info, abi_current);
	OFFSET(evl_core_info, fpu_features);
	OFFSET(evl_core_info, shm_size);

	SIZE(evl_net_devopen);
	OFFSET(evl_net_devopen, name_ptr);
	OFFSET(evl_net_devopen, fd);

	SIZE(evl_net_devparams);
	OFFSET(evl_net_devparams, poolsz);
	OFFSET(evl_net_devparams, bufsz);

	SIZE(evl_net_devstat);
	OFFSET(evl_net_devstat, rx_packets);
	OFFSET(evl_net_devstat, rx_bytes);
	OFFSET(evl_net_devstat, tx_packets);
	OFFSET(evl_net_devstat, tx_bytes);
	OFFSET(evl_net_devstat, skb_size);
	OFFSET(evl_net_devstat, skb_free);
	OFFSET(evl_net_devstat, skb_total);
	OFFSET(evl_net_devstat, csum_errors);
	OFFSET(evl_net_devstat, rx_nomem);
	OFFSET(evl_net_devstat, tx_nomem);
	OFFSET_AS(evl_net_devstat, __flags, "flags");

	memset(&st, 0, sizeof(st));
	st.oob_capable = 1;
	printf("flag evl_net_devstat oob_capable 0x%x\n", st.__flags);
	memset(&st, 0, sizeof(st));
	st.oob_port = 1;
	printf("flag evl_net_devstat oob_port 0x%x\n", st.__flags);

	SIZE(evl_net_solicit);
	OFFSET(evl_net_solicit, addr);
	OFFSET(evl_net_solicit, flags);

	SIZE(evl_net_g2_openport);
	OFFSET(evl_net_g2_openport, name_ptr);
	OFFSET(evl_net_g2_openport, poolsz);
	OFFSET(evl_net_g2_openport, bufsz);
	OFFSET(evl_net_g2_openport, fd);

	REQUEST(EVL_CTLIOC_GET_COREINFO);
	REQUEST(EVL_NETIOC_DEVOPEN);
	REQUEST(EVL_NDEVIOC_SETRXEBPF);
	REQUEST(EVL_NDEVIOC_SETPORT);
	REQUEST(EVL_NDEVIOC_GETSTAT);
	REQUEST(EVL_SOCKIOC_SOLICIT);
	REQUEST(EVL_NET_GETDEVFD);
	REQUEST(EVL_NET_OPENPORT);
	REQUEST(EVL_NDEVIOC_SWITCHOFF);

	CONST(EVL_NEIGH_PERMANENT);
	CONST(EVL_NEIGH_MAYROUTE);
	CONST(SOCK_OOB_NEWEST);
	CONST(SOCK_OOB_OLDER);
	CONST(EVL_NET_IOCBASE);
	CONST(EVL_NETDEV_IOCBASE);
	CONST(EVL_SOCKET_IOCBASE);
	CONST(EVL_CONTROL_IOCBASE);
	printf("size sockaddr_storage %zu\n", sizeof(struct __kernel_sockaddr_storage));
	printf("size pointer %zu\n", sizeof(void *));
	return 0;
}
