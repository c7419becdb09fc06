# What every evl.net module does the same way: import the evl-tools library on the board, open the
# board, converge it and report in Ansible's terms.
from __future__ import annotations

import os
import sys

BOARD_ARGS = {
    "transport": {"type": "str", "choices": ["auto", "sim", "ioctl"]},
    "board": {"type": "str"},
    "lock_timeout": {"type": "float", "default": 30.0},
}

INSTALL_HINT = (
    "install evl-tools and its net plugin there (pip install evl-tools evl-net, or the evl.net.board role), "
    "or set ansible_python_interpreter to the Python they are installed in"
)


def library(module):
    """The evl-tools library API, or the module fails saying what to install."""
    try:
        from evl_net import api
    except ImportError as exc:
        module.fail_json(
            msg=f"the evl-tools library (evl_net) cannot be imported by {sys.executable} on this board: {INSTALL_HINT}",
            error=str(exc),
        )
    return api


def open_board(module):
    """The board the module's options and the task's environment name (fails the module if it cannot be opened)."""
    api = library(module)
    from evl_core.errors import EvlError

    params = module.params
    if not 0 <= params["lock_timeout"] <= 3600:
        module.fail_json(msg=f"lock_timeout must be seconds in 0..3600, not {params['lock_timeout']}")
    try:
        return api.open_board(transport=params["transport"] or "auto", board=params["board"], env=dict(os.environ))
    except EvlError as exc:
        module.fail_json(msg=exc.said())


def converge(module, board, setup=None, edit=None, rollback=True):
    """Run :func:`evl_net.netconfig.converge.converge` with the module's check mode and lock timeout."""
    from evl_net.netconfig.converge import converge as run

    return run(
        board,
        setup=setup,
        edit=edit,
        check=module.check_mode,
        env=dict(os.environ),
        lock_timeout=module.params["lock_timeout"],
        rollback=rollback,
    )


def finish(module, done, **result):
    """Exit (or fail) the module with what converging did: changed, the steps, the diff, ``result``."""
    out = dict(result)
    out.update(done.to_json())
    out["plan"] = [s.line() for s in done.steps]
    if module._diff and done.after:
        out["diff"] = {
            "before": done.before,
            "after": done.after,
            "before_header": "board setup before",
            "after_header": "board setup after",
        }
    if done.failed:
        module.fail_json(msg=done.message, **out)
    module.exit_json(**out)
