# The options every evl.net module shares: which board it works on, through which transport.
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  transport:
    description:
      - How the module reaches the board's out-of-band network stack.
      - C(auto) takes the EVL core's ioctl interface where C(/dev/evl/net) exists and the simulator
        otherwise, as C(evl net) does.
      - When not given, C(EVL_NET_TRANSPORT) in the task's environment chooses, then C(auto).
    type: str
    choices: [auto, sim, ioctl]
  board:
    description:
      - The simulated board (a board file, or the name of a built-in board) when the transport is the
        simulator; C(EVL_SIM_BOARD) in the task's environment otherwise.
      - The simulator's state file is C(EVL_SIM_STATE) in the task's environment.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for the board's lock, the one C(evl net-config apply) and the board agent's
        sessions take, before failing.
    type: float
    default: 30
attributes:
  action_group:
    support: full
    membership: [evl.net.all]
  check_mode:
    support: full
  platform:
    platforms: posix
requirements:
  - evl-tools and its net plugin (C(pip install evl-tools evl-net)) importable by the board's
    Python (C(ansible_python_interpreter)); the C(evl.net.board) role installs them.
notes:
  - The module runs on the board and goes through the evl-tools library (C(evl_net.api)), so it
    checks and words errors as C(evl net) does.
"""
