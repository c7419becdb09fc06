#!/usr/bin/python
# The eBPF RX filter of an out-of-band port's real device.
from __future__ import annotations

DOCUMENTATION = r"""
module: rx_filter
short_description: Install or remove the eBPF RX filter of an EVL board's out-of-band port
description:
  - Installs an eBPF object as the RX filter of the out-of-band port O(name), as C(evl net -F)
    does, or removes the filter. The filter belongs to the port's real device, so it applies to
    every port on it.
  - With O(src), the object is on the controller; the action plugin compares its sha256 with the
    object kept at O(dest) on the board and copies it only when it differs. The filter is
    installed only when the one the board has is not that object (by sha256), so running the
    task again changes nothing.
  - The board cannot read a filter back from the kernel; what is known comes from the record
    evl-tools keeps of what it installed. A filter the board cannot identify is replaced.
version_added: 0.1.0
options:
  name:
    description: The out-of-band port (enabled first, with M(evl.net.port)).
    type: str
    required: true
    aliases: [interface]
  state:
    description: Whether the port's real device has this filter, or none.
    type: str
    choices: [present, absent]
    default: present
  src:
    description:
      - The eBPF object (an ELF file built with C(clang -target bpf)) on the controller, looked up
        in the role's or playbook's C(files/) as M(ansible.builtin.copy) does.
      - Mutually exclusive with O(path).
    type: path
  path:
    description: The eBPF object already on the board.
    type: path
  dest:
    description:
      - Where the object from O(src) is kept on the board (written atomically, mode 0644), so that
        an C(evl net-config) file can name it too.
      - Only with O(src). When not given, C(/var/lib/evl-tools/filters/) followed by the base name of O(src).
    type: path
  sha256:
    description:
      - The object's expected sha256 (hex); the module fails when the object is another.
    type: str
extends_documentation_fragment:
  - evl.net.board
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  diff_mode:
    support: full
author:
  - evl-tools maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Only PTP frames to the out-of-band stack on eth0
  evl.net.rx_filter:
    name: eth0.42
    src: ptp_only.bpf.o

- name: An object already on the board, pinned
  evl.net.rx_filter:
    name: eth0.42
    path: /usr/lib/evl/filters/ptp_only.bpf.o
    sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae

- name: No filter
  evl.net.rx_filter:
    name: eth0.42
    state: absent
"""

RETURN = r"""
real:
  description: The real device the filter belongs to.
  returned: success
  type: str
  sample: eth0
object:
  description: The object installed (null when none).
  returned: success
  type: str
  sample: /var/lib/evl-tools/filters/ptp_only.bpf.o
sha256:
  description: Its sha256 (null when none).
  returned: success
  type: str
program:
  description: The program the object's first one turned out to be, when the board says.
  returned: when installed
  type: str
"""

import errno
import hashlib
import os
import tempfile
from contextlib import nullcontext

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.evl.net.plugins.module_utils.board import BOARD_ARGS, library, open_board

OBJECT_MAX = 64 << 20


def digest(module, path, follow=False):
    """The sha256 of the regular file ``path`` (fails the module for anything else).

    ``follow``: through a symbolic link (an object the user names); never for
    the files the module writes or was handed.
    """
    import stat

    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP and not follow else exc.strerror
        module.fail_json(msg=f"cannot read eBPF object {path}: {why}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            module.fail_json(msg=f"cannot read eBPF object {path}: not a regular file")
        if st.st_size > OBJECT_MAX:
            module.fail_json(msg=f"cannot read eBPF object {path}: larger than {OBJECT_MAX} bytes")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return hashlib.sha256(f.read(OBJECT_MAX + 1)).hexdigest()
    except OSError as exc:
        module.fail_json(msg=f"cannot read eBPF object {path}: {exc.strerror}")
    finally:
        if fd >= 0:
            os.close(fd)


def kept(path):
    """Whether ``path`` is a regular file (not followed through a symlink)."""
    try:
        import stat

        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def stage(module, src, dest):
    """A copy of ``src`` beside ``dest`` (same file system, mode 0644), to be renamed over it."""
    directory = os.path.dirname(dest) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, staged = tempfile.mkstemp(prefix=".evl-filter.", dir=directory)
    except OSError as exc:
        module.fail_json(msg=f"cannot write {dest}: {exc.strerror}")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            out.write(f.read(OBJECT_MAX + 1))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(staged, 0o644)
    except OSError as exc:
        discard(staged)
        module.fail_json(msg=f"cannot write {dest}: {exc.strerror}")
    return staged


def discard(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def install(module, board, name, tmp, dest, load=True):
    """Put the transferred object ``tmp`` at ``dest`` atomically and (``load``) install it from there.

    When the kernel refuses the object, ``dest`` gets back what it held: the
    board keeps the object it had and never a half-written or refused one.
    """
    from evl_core.errors import EvlError

    backup = stage(module, dest, dest) if load and kept(dest) else None
    staged = stage(module, tmp, dest)
    try:
        os.replace(staged, dest)
    except OSError as exc:
        discard(staged)
        module.fail_json(msg=f"cannot write {dest}: {exc.strerror}")
    if not load:
        return
    try:
        board.set_filter(name, dest)
    except EvlError:
        if backup is not None:
            os.replace(backup, dest)
        else:
            discard(dest)
        raise
    if backup is not None:
        discard(backup)


def filter_line(state):
    """The diff's line for the filter ``state`` (a FilterState)."""
    if state.installed is False:
        return "filter: none\n"
    if state.installed is None:
        return "filter: unknown (the board cannot tell which)\n"
    return f"filter: {state.object} (sha256 {state.sha256})\n"


def object_line(path, sha):
    """The diff's line for the object kept at ``path`` (none without a path)."""
    if path is None:
        return ""
    return f"object at {path}: " + (f"sha256 {sha}\n" if sha else "none\n")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True, aliases=["interface"]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            src=dict(type="path"),
            path=dict(type="path"),
            dest=dict(type="path"),
            sha256=dict(type="str"),
            _tmp_src=dict(type="path"),
            _probe=dict(type="bool"),
            **BOARD_ARGS,
        ),
        mutually_exclusive=[("src", "path")],
        supports_check_mode=True,
    )
    p = module.params
    if p["src"] is not None:
        module.fail_json(msg="src is copied by the evl.net.rx_filter action plugin: run the module as a task")
    present = p["state"] == "present"
    if present and p["path"] is None:
        module.fail_json(msg="state=present needs src (on the controller) or path (on the board)")
    if not present and (p["path"] or p["sha256"]):
        module.fail_json(msg="path and sha256 are for state=present")
    pin = (p["sha256"] or "").lower() or None
    if pin is not None and (len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin)):
        module.fail_json(msg=f"sha256 must be 64 hex digits, not {p['sha256']!r}")
    path = p["path"]
    if present and not os.path.isabs(path):
        module.fail_json(msg=f"the object's path on the board must be absolute, not {path!r}")

    # the object's digest: of the copy just transferred, or of the one on the board
    sha = kept_sha = None
    write = False
    if present:
        if p["_tmp_src"] is not None:
            sha = digest(module, p["_tmp_src"])
            if os.path.lexists(path) and not kept(path):
                module.fail_json(msg=f"cannot keep the eBPF object at {path}: not a regular file")
            kept_sha = digest(module, path) if kept(path) else None
            write = kept_sha != sha
        elif p["_probe"] and (not kept(path) or digest(module, path) != pin):
            module.exit_json(changed=False, need_object=True)  # the action plugin copies it, then runs again
        else:
            sha = kept_sha = digest(module, path, follow=not p["_probe"])
        if pin is not None and sha != pin:
            module.fail_json(msg=f"eBPF object {path} has sha256 {sha}, not {pin}")
    where = path if present else None

    library(module)
    from evl_core.errors import EvlError
    from evl_net.netconfig.apply import board_lock
    from evl_net.outcomes import FilterState

    with open_board(module) as board:
        try:
            if not present and not board.stat(p["name"]).oob_port:
                module.exit_json(changed=False, real=None, object=None, sha256=None, program=None)  # no port: no filter
            with nullcontext() if module.check_mode else board_lock(dict(os.environ), p["lock_timeout"]):
                before = board.filter_state(p["name"])
                wanted = before.installed is True and before.sha256 == sha if present else before.installed is False
                changed = write or not wanted
                if changed and not module.check_mode:
                    if write:
                        install(module, board, p["name"], p["_tmp_src"], path, load=not wanted)
                    elif not wanted:
                        board.set_filter(p["name"], path if present else None)
                    after = board.filter_state(p["name"])
                elif not wanted:  # check mode: what the install would leave
                    after = FilterState(before.real, present, path if present else None, sha)
                else:
                    after = before
        except EvlError as exc:
            module.fail_json(msg=exc.said())
    out = dict(changed=changed, real=after.real, object=after.object, sha256=after.sha256, program=after.program)
    if module._diff:
        out["diff"] = dict(
            before=filter_line(before) + object_line(where, kept_sha),
            after=filter_line(after) + object_line(where, sha),
            before_header=p["name"],
            after_header=p["name"],
        )
    module.exit_json(**out)


if __name__ == "__main__":
    main()
