"""Synthetic multi-channel customer data with ground truth: `cdp generate`."""
