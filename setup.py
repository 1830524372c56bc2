# cffi's setuptools hook takes its builder here; everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["meshagent/_build_core.py:ffibuilder"])
