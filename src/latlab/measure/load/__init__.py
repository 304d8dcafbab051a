"""The load engine: keep-alive HTTP/1.1 over asyncio protocols, in worker processes.

``plan`` says what to send (checked once), ``tally`` records each second of one worker with
HDR histograms, ``engine`` drives one worker's connections (closed or open model), ``pool``
runs the worker processes and merges their seconds, ``summary`` turns merged seconds into
the run's figures.
"""
