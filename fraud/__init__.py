"""Real-time e-commerce fraud detection on Spark Structured Streaming."""
