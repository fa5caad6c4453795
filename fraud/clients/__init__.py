"""Clients of the services the pipeline talks to, wherever they run (the local stack, compose, a cluster):
Kafka (``kafka``), MySQL (``mysql``), Elasticsearch (``elasticsearch``). Starting local services is
``fraud.stack``'s business, not theirs."""
