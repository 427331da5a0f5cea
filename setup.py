"""Maps the source folder `thunder_core/` to the import name `thunder` (setuptools cannot rename packages
found by `packages.find`, so the package list is computed here)."""
from setuptools import find_packages, setup

setup(packages=["thunder"] + ["thunder." + p for p in find_packages("thunder_core")])
