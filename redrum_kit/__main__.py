import sys

from redrum_kit.cli import main

sys.exit(main())
