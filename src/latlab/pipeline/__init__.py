"""The four pipeline services of seed 002: client → receiver → handler → writer.

A request is acknowledged once it is durable in a queue (``queue/``): Redis Streams when
``LATLAB_REDIS_URL`` is set, else LatLab's SQL store (``pipeline up`` only). The writer
(``writer.py``) writes both files in receipt order, whatever order processing ends in.
"""
