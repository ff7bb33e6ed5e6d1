"""Benchmark handler "Simple return": the reference table's first row.

Returns a constant; measures the platform's own per-invoke overhead.
"""


def handler(event, context):
    return {"ok": True}
