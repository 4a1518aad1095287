"""spark-submit entry point: spark-submit jobs/tags.py [--env ENV] [--lake PATH] [--run-id ID] [--as-of DATE]"""

import sys

from cdp.tags.job import main

if __name__ == "__main__":
    sys.exit(main())
