"""Tags: a declarative catalogue compiled into a few aggregation passes over the facts."""
