"""cdp-lakehouse: a Customer Data Platform engine built as PySpark jobs on Delta Lake."""

__version__ = "0.1.0"
