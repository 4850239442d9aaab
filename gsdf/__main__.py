import sys

from gsdf.cli import main

sys.exit(main())
