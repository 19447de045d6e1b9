import sys

from tricorn.cli import main

sys.exit(main())
