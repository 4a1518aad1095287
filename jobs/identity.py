"""spark-submit entry point: spark-submit jobs/identity.py [--env ENV] [--lake PATH] [--run-id ID]"""

import sys

from cdp.identity.job import main

if __name__ == "__main__":
    sys.exit(main())
