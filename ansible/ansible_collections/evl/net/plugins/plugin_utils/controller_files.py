# Reading the files a task names on the controller: regular files only, bounded, one clear error each.
from __future__ import annotations

import os

from ansible.errors import AnsibleError


def read_regular(path, what, limit):
    """The bytes of the regular file ``path`` (``what`` names it in errors), at most ``limit`` of them."""
    if not os.path.isfile(path):  # before opening: a FIFO would block the controller
        raise AnsibleError(f"cannot read {what} {path}: not a regular file")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise AnsibleError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise AnsibleError(f"{what} {path} is larger than {limit} bytes")
    return data
