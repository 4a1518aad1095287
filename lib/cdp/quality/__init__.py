"""Data quality: Great Expectations suites applied to silver tables, critical failures as errors."""
