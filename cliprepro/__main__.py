import sys

from cliprepro.cli import main

sys.exit(main())
