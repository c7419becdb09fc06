import sys

from evl_core.cli import console_main

sys.exit(console_main())
