"""Command-line front ends: ``meshagent`` (the agent's verbs) and ``meshctl`` (the console).

One module per verb. ``agent_<verb>.py`` modules are verbs of ``meshagent``,
``ctl_<verb>.py`` modules verbs of ``meshctl``. Each defines::

    HELP = "one line for --help"
    def configure(parser: argparse.ArgumentParser) -> None: ...   # add its options
    def run(args: argparse.Namespace) -> int: ...                  # the exit code

The modules parse and print; the work is done by library calls that take parameters.
"""
