"""The lean HTTP/1.1 server kit every LatLab service stands on (the targets, the pipeline).

    wire.py      requests as handlers see them; responses encoded once, as bytes
    routes.py    exact paths, prefixes, a fallback; a handler answers, or returns a coroutine
                 or a future
    protocol.py  one connection: httptools parsing, header limits, timeouts
    answers.py   its answers: pipelined in order, written as the client reads (back-pressure)
    connections.py  the open connections: a cap, the timeout sweep, the drain at shutdown
    limits.py    ``ServerLimits``; the file-descriptor limit and the connection cap under it
    counting.py  the layout of the request counts the connections keep
    server.py    ``HttpServer``: a router behind a listener, graceful close
    signals.py   SIGINT/SIGTERM as a clean stop, even when inherited ignored
    runner.py    the event loop (uvloop), and a worker's side of the supervisor's contract
    workers.py   the supervisor: N processes on one port (SO_REUSEPORT)

It imports nothing of LatLab outside this package, so a service runs alone; modules are
imported by their own path, so a process that only needs ``signals`` loads no parser.
"""
