"""Artifact registry: content-addressed artifacts, a promotion state machine, live reload.

``hashing`` computes the content address; ``artifact`` verifies content and names every
refusal (``Refusal``); ``states`` is the pure transition table (routes, one mutator);
``repository`` holds the SQL; ``service`` is the only way to move an artifact (promote with
evidence, retire, rollback, bootstrap) and holds the pin rule; ``cache`` keeps the served
artifact and operator controls fresh on every replica.
"""
