"""The committed man pages are what the parsers generate, and groff reads them cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man"
PAGES = sorted(MAN.glob("*.[58]"))


def test_pages_are_fresh(tmp_path):
    if sys.version_info[:2] != (3, 11):
        pytest.skip("pages are generated under Python 3.11, whose argparse wrapping they pin")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_manpages.py"), "--outdir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    generated = sorted(p.name for p in tmp_path.glob("*.[58]"))
    assert generated == [p.name for p in PAGES], "man/ and the generated set differ"
    for page in PAGES:
        assert (tmp_path / page.name).read_text() == page.read_text(), (
            f"man/{page.name} is stale: run python scripts/gen_manpages.py"
        )


def test_check_mode_reports_a_stale_page(tmp_path):
    for page in PAGES:
        shutil.copy(page, tmp_path / page.name)
    (tmp_path / "evl-net.8").write_text((tmp_path / "evl-net.8").read_text().replace("EXIT STATUS", "EXIT STATE"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_manpages.py"), "--check", "--outdir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "evl-net.8" in proc.stderr


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_groff_has_no_warning(page):
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    proc = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_net_page_documents_what_users_need():
    text = (MAN / "evl-net.8").read_text()
    for needle in (
        "STRICTER THAN THE C TOOL",
        "ENVIRONMENT",
        "EXIT STATUS",
        "FILES",
        "EVL_NET_TRANSPORT",
        "EVL_SIM_BOARD",
        r"\-\-json",
        r"\-\-all",
        r"\-\-transport",
        "GETOPT SEMANTICS",
    ):
        assert needle in text, needle
    evl = (MAN / "evl.8").read_text()
    for needle in ("ENVIRONMENT", "EXIT STATUS", "EVL_DISABLE_PLUGIN_AUTOLOAD", r"evl\-net"):
        assert needle in evl, needle


def test_help_man_prints_the_page_of_a_command_and_refuses_others(evl):
    run = evl("help", "--man", "net")
    assert run.code == 0
    assert run.out == (ROOT / "man" / "evl-net.8").read_text()  # the shipped page, made the same way
    assert run.out.startswith(".TH EVL\\-NET") and "\\-\\-all\\-interfaces" in run.out
    run = evl("help", "--man", "nope")
    assert (run.code, run.out) == (1, "")
    assert run.err == "evl-help: no man page for 'nope': not a plugin command (see evl help)\n"


def test_every_page_is_installed():
    """pyproject.toml's data-files list the pages of man/, each in its section's directory."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    installed = {(d, Path(f).name) for d, files in data.items() if d.startswith("share/man/") for f in files}
    assert installed == {(f"share/man/man{p.suffix[1:]}", p.name) for p in PAGES}
