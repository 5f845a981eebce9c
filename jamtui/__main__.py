import sys

from jamtui.cli import main

sys.exit(main())
