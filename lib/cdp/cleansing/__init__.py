"""Cleansing: landing files to clean (silver) Delta tables, checked, with quarantine."""
