"""evl-tools: the ``evl`` command dispatcher and its plugin host."""

__version__ = "0.1.0"

#: The EVL ABI revision these tools are written against (libevl's EVL_ABI_PREREQ).
EVL_ABI_PREREQ = 45
