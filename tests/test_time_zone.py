"""The host's time zone never moves an instant: a Python datetime given to Spark, and read back, is UTC."""
from __future__ import annotations

import calendar
import os
import subprocess
import sys
from datetime import datetime

PROBE = """
from datetime import datetime
from pyspark.sql import functions as F
from fraud.spark import build_spark_session
from fraud.testing.stack import stack_settings
spark = build_spark_session(stack_settings(), "time-zone", master="local[1]", ui=False)
moment = F.lit(datetime(2018, 8, 8))
row = spark.range(1).select(F.unix_micros(moment).alias("us"), moment.alias("back")).first()
print(row.us, row.back.isoformat())
spark.stop()
"""


def test_a_datetime_is_the_same_instant_in_spark_east_of_utc():
    """PySpark converts datetimes in the driver's local zone: under TZ=Asia/Tokyo, 2018-08-08 00:00 became
    2018-08-07 15:00 UTC in a training filter (the test week's metrics changed)."""
    probe = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, "TZ": "Asia/Tokyo"},
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    us, back = probe.stdout.split()[-2:]
    assert int(us) == calendar.timegm(datetime(2018, 8, 8).timetuple()) * 10**6
    assert back == "2018-08-08T00:00:00"
