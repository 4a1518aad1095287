"""spark-submit entry point: spark-submit jobs/maintain.py [--env ENV] [--lake PATH] [--run-id ID]"""

import sys

from cdp.ops.maintain import main

if __name__ == "__main__":
    sys.exit(main())
