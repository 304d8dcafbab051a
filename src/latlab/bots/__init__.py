"""The standalone robot: ``python -m latlab.bots N`` (or ``latlab bot N``).

Kept free of the web stack so that it starts printing at once.
"""
