"""Stand-ins for the outside systems Kassa talks to, for offline runs and tests.

Each sandbox is a small app of its own (``sandboxes/<system>/``) that speaks the real system's
protocol closely enough for Kassa's clients and the outside reference clients to run against it.
The product never imports a sandbox; ``shared.topology.SANDBOXES`` names them and ``kassa run``
starts them as child processes.
"""
