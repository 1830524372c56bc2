"""The package version: the one place it is written.

The C core is compiled with this string (``MESH_PACKAGE_VERSION``) and
``meshagent.core`` refuses to import an extension built for another version.
"""

__version__ = "0.1.0"
