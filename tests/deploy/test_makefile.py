"""`make install` as a newcomer meets it: the Python it needs is checked before anything is made,
and the terminal says what is installed, how big it is and how long it takes, step by step."""

import re
import subprocess
import tomllib

from tests.stack import ROOT

MAKEFILE = (ROOT / "Makefile").read_text()


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True)


def test_the_required_python_is_pyprojects():
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = re.search(r"^PYTHON_VERSION := (\S+)$", MAKEFILE, re.MULTILINE).group(1)
    assert required == f">={version},<3.{int(version.split('.')[1]) + 1}"


def test_another_python_is_refused_before_the_venv_is_made(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.10.12" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    made = make("install", f"VENV={venv}", f"PYTHON={fake}")
    assert made.returncode != 0
    assert "needs Python 3.11" in made.stderr and "Python 3.10.12" in made.stderr
    assert "PYTHON=python3.11" in made.stderr
    assert not venv.exists()


def test_install_says_what_how_big_and_how_long_and_lets_pip_show_progress(tmp_path):
    planned = make("--dry-run", "install", f"VENV={tmp_path / 'venv'}")
    assert planned.returncode == 0, planned.stderr
    said = " ".join(re.findall(r'^echo "(.*)"$', planned.stdout, re.MULTILINE))
    assert "Python 3.11" in said and "torch" in said and "Streamlit" in said
    assert re.search(r"about \d+(\.\d+)? GB on disk, [\d.]+ minutes", said)
    assert [step for step in ("[1/3]", "[2/3]", "[3/3]") if step in said] == ["[1/3]", "[2/3]", "[3/3]"]
    main_install = next(line for line in planned.stdout.splitlines() if 'install --progress-bar on -e ".[api' in line)
    assert "--quiet" not in main_install
