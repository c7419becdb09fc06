# Copies the eBPF object named by ``src`` from the controller to the board, only when the board's copy
# differs (by sha256), then runs the module on it.
from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.evl.net.plugins.plugin_utils.controller_files import read_regular

OBJECT_MAX = 64 << 20
DEFAULT_DIR = "/var/lib/evl-tools/filters"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.pop("src", None)
        dest = args.pop("dest", None)
        if src is None:
            if dest is not None:
                return dict(result, failed=True, msg="dest is where the object from src is kept: give src too")
            result.update(self._execute_module(module_args=args, task_vars=task_vars))
            return result
        if args.get("path") is not None:
            return dict(result, failed=True, msg="give src (on the controller) or path (on the board), not both")
        if args.get("state", "present") != "present":
            return dict(result, failed=True, msg="src is for state=present")
        try:
            local = self._find_needle("files", src)
            sha = hashlib.sha256(read_regular(local, "eBPF object", OBJECT_MAX)).hexdigest()
        except AnsibleError as exc:
            return dict(result, failed=True, msg=to_text(exc))
        pin = args.get("sha256")
        if pin and str(pin).lower() != sha:
            return dict(result, failed=True, msg=f"eBPF object {src} has sha256 {sha}, not {pin}")
        args.update(path=dest or f"{DEFAULT_DIR}/{os.path.basename(local)}", sha256=sha)
        try:
            found = self._execute_module(module_args=dict(args, _probe=True), task_vars=task_vars)
            if found.get("need_object"):
                shell = self._connection._shell
                if not shell.tmpdir:
                    self._make_tmp_path()
                remote = shell.join_path(shell.tmpdir, "evl-filter.o")
                self._transfer_file(local, remote)
                self._fixup_perms2((shell.tmpdir, remote))
                found = self._execute_module(module_args=dict(args, _tmp_src=remote), task_vars=task_vars)
            found.pop("need_object", None)
            result.update(found)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
