# A callback that writes every task result as one JSON line (host, task, status, result) to the file
# EVL_RESULTS names, so that the tests read what ansible-playbook reported rather than its screen.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: evl_results
type: aggregate
short_description: task results as JSON lines, for the evl-tools tests
description: Writes each task result to the file named by EVL_RESULTS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "evl_results"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, result, status):
        record = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "status": status,
            "result": json.loads(json.dumps(result._result, default=str)),
        }
        with open(os.environ["EVL_RESULTS"], "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")
