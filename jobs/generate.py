"""spark-submit entry point: spark-submit jobs/generate.py --persons N [--seed S] [--lake PATH] [noise options]"""

import sys

from cdp.generate.job import main

if __name__ == "__main__":
    sys.exit(main())
