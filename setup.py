# cffi's setuptools hook takes its builder here; everything else is in pyproject.toml.
from setuptools import setup

# The extension uses only the stable ABI (cffi builds _core.abi3.so), so one wheel per platform
# serves CPython 3.11 and later.
setup(cffi_modules=["meshagent/_build_core.py:ffibuilder"],
      options={"bdist_wheel": {"py_limited_api": "cp311"}})
