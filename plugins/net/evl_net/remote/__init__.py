"""``evl net`` over SSH: the agent a board runs, the client and the fleet fan-out.

* :mod:`evl_net.remote.protocol` -- the wire format (JSON lines), its limits and its strict parser;
* :mod:`evl_net.remote.agent` -- ``evl net-agent --stdio``, the board side, run by sshd;
* :mod:`evl_net.remote.client` -- one session with one board through the system ``ssh``;
* :mod:`evl_net.remote.fleet` -- the same commands on many boards at once.

Nothing here is imported unless a remote board is used.
"""
