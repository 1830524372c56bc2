"""Entry point of the frozen ``meshagent`` executable (see meshagent.spec)."""

import sys

from meshagent.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
