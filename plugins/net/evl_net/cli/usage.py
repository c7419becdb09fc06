"""The C tool's usage text, exactly; a module of its own so that ``-h`` imports nothing else."""

USAGE = """\
usage: {prog} [options]:
-e -i <ifname> [-p][-b]            enable out-of-band port in network interface <ifname>
   -p <pool-size>                  max number of out-of-band socket buffers (0=default)
   -b <buffer-size>                size (in bytes) of out-of-band socket buffer (0=default)
-d -i <ifname>                     disable out-of-band port in network interface <ifname>
-s <host> [-i <ifname>][-g]        solicit <host> via <ifname> if given
-S <host> [-i <ifname>][-g]        like -s, marking ARP entry as permanent
   -g                              allow routing to destination via gateway(s)
-Q[RrTtosfacx] -i <ifname>         query network interface information about <ifname>
-F[<bpf-module.o>] -i <ifname>     install/remove eBPF filter (RX)
-N[<vlan-id-list]                  add/remove VLAN id. filter (RX)
-n                                 show VLAN id. filter (RX)
"""
