import sys

from cxrbench.cli import main

sys.exit(main())
