"""The wheel carries the template: copier.yml and template/ go into the package as flakewright/_template/.

Everything else is in pyproject.toml. An editable install reads the checkout itself, so nothing is copied then.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithTemplate(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "flakewright" / "_template"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy2(HERE / "copier.yml", target / "copier.yml")
        shutil.copytree(HERE / "template", target / "template", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithTemplate})
