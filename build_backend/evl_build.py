"""The build backend: setuptools, plus the data files (man pages, completions) in editable wheels too.

setuptools installs ``[tool.setuptools.data-files]`` from a normal wheel but
leaves them out of the wheel ``pip install -e`` builds, so a development
install would have no ``man evl-net`` and no shell completion.  This wraps
setuptools' backend and adds those files to the editable wheel's
``<name>.data/data/`` directory, which pip installs into the environment's
prefix exactly as for a normal wheel.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tomllib
import zipfile

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the PEP 517 hooks, unchanged but for build_editable)


def _data_files(root: str) -> list[tuple[str, str]]:
    """(path in the prefix, source file) for every data file pyproject.toml declares."""
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        table = tomllib.load(f).get("tool", {}).get("setuptools", {}).get("data-files", {})
    return [
        (f"{target}/{os.path.basename(src)}", os.path.join(root, src))
        for target, files in table.items()
        for src in files
    ]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _add_data(wheel: str, files: list[tuple[str, str]]) -> None:
    with zipfile.ZipFile(wheel) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    record_name = next(i.filename for i, _d in entries if i.filename.endswith(".dist-info/RECORD"))
    data_dir = record_name.split("/")[0][: -len(".dist-info")] + ".data/data"
    present = {info.filename for info, _d in entries}
    added = []
    for target, src in files:
        if f"{data_dir}/{target}" in present:  # a setuptools that ships data files in editable wheels itself
            continue
        with open(src, "rb") as f:
            added.append((f"{data_dir}/{target}", f.read()))
    tmp = wheel + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        record = ""
        for info, data in entries:
            if info.filename == record_name:
                record = data.decode()
                continue
            out.writestr(info, data)
        for name, data in added:
            out.writestr(name, data)
        lines = [line for line in record.splitlines() if line]
        lines[-1:-1] = [_record_line(name, data) for name, data in added]  # RECORD's own line stays last
        out.writestr(record_name, "\n".join(lines) + "\n")
    os.replace(tmp, wheel)


def build_editable(
    wheel_directory: str,
    config_settings: dict | None = None,  # type: ignore[no-redef]
    metadata_directory: str | None = None,
) -> str:
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    _add_data(os.path.join(wheel_directory, name), _data_files(os.getcwd()))
    return name
