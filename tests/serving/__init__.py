"""Tests of ``latlab.serving``. A package, so that ``serving.http_client`` (raw HTTP/1.1)
is importable from the targets' tests too."""
