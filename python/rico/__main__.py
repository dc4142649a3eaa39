"""``python -m rico`` and the ``rico`` console script: the same command line as the binary."""

import sys

from . import _rico


def main() -> None:
    """Run the rico command line with ``sys.argv`` and exit with its code."""
    sys.exit(_rico.main(["rico", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
