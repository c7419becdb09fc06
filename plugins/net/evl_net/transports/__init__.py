"""The ways to reach a board's EVL network stack: the kernel ABI, the simulator, a remote board.

:mod:`evl_net.transports.contract` is what they all implement.
"""
