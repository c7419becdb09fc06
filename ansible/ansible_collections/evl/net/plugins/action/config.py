# Reads the evl net-config files named by ``src`` on the controller and hands their text to the
# module, which runs on the board.
from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.evl.net.plugins.plugin_utils.controller_files import read_regular

FILE_MAX = 16 << 20


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if "_content" in args:
            return dict(result, failed=True, msg="_content is the action plugin's own: use src, path or config")
        src = args.get("src")
        if src is not None:
            try:
                found = self._find_needle("files", src)
                args["_content"] = [{"name": name, "text": self._read(name)} for name in self._files(found)]
            except AnsibleError as exc:
                return dict(result, failed=True, msg=to_text(exc))
        result.update(self._execute_module(module_args=args, task_vars=task_vars))
        return result

    @staticmethod
    def _files(path):
        """``path``, or the ``*.toml`` files of the directory ``path`` in name order."""
        if not os.path.isdir(path):
            return [path]
        names = sorted(n for n in os.listdir(path) if n.endswith(".toml") and not n.startswith("."))
        if not names:
            raise AnsibleError(f"no net-config file (*.toml) in {path}")
        return [os.path.join(path, n) for n in names]

    @staticmethod
    def _read(path):
        data = read_regular(path, "net-config file", FILE_MAX)
        try:
            return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AnsibleError(f"net-config file {path} is not UTF-8 text (byte {exc.start})") from None
