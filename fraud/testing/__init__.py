"""Test and benchmark infrastructure (not used by the product): the test stack's settings (``stack``), isolated
pipelines on it and the stream as a real process (``pipeline``), the decision query in process (``inprocess``), a
local Spark standalone cluster (``cluster``), and test data (``data``)."""
