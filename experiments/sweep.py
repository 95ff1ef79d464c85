"""A sweep over N for Exp-II/III, written as the paper's Table 3 (OUT/table3.md, table3.json). See --help."""

import sys

from mer_keras.cli import sweep_main


def main(argv=None) -> int:
    return sweep_main(argv)


if __name__ == "__main__":
    sys.exit(main())
