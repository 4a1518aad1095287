"""spark-submit entry point: spark-submit jobs/cleanse.py [--env ENV] [--lake PATH] [--run-id ID] [--sources a,b]"""

import sys

from cdp.cleansing.job import main

if __name__ == "__main__":
    sys.exit(main())
