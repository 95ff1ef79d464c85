"""STSTNet: three shallow CNN streams on the onset-to-apex flow, same protocol as exp1-3. See --help."""

import sys

from mer_keras.cli import run_main


def main(argv=None) -> int:
    return run_main("ststnet", argv)


if __name__ == "__main__":
    sys.exit(main())
