"""OFF-ApexNet: two CNN streams on the onset-to-apex flow (u, v), same protocol as exp1-3. See --help."""

import sys

from mer_keras.cli import run_main


def main(argv=None) -> int:
    return run_main("offapexnet", argv)


if __name__ == "__main__":
    sys.exit(main())
