"""Deterministic risk and policy gates: pure functions with the final word on every order.

Each gate takes the ``GateContext`` and the ``PolicyLimits`` and returns a ``GateResult``
(stable ``GateCode``, passed, reason). ``evaluate`` runs every gate, always, so the audit row
records every failure, not only the first. No I/O, no clock: time arrives in the context.
"""
