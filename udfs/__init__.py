"""pandas UDFs: model scoring inside Spark."""
