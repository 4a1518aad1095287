"""The one place tables are read and written: logical names over Delta, via delta-spark or delta-rs."""

from cdp.lake.engine import Commit, Partition, TableInfo, WriteResult
from cdp.lake.lake import Lake, make_engine

__all__ = ["Commit", "Lake", "Partition", "TableInfo", "WriteResult", "make_engine"]
