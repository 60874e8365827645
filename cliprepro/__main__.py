import sys

from cliprepro.cli import main

if __name__ == "__main__":  # trainer processes (multiprocessing's forkserver) import this module too
    sys.exit(main())
