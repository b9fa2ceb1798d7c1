"""Artifact registry: content-addressed artifacts, a promotion state machine, live reload.

``hashing`` computes the content address; ``states`` is the pure transition table;
``repository`` holds the SQL; ``service`` applies transitions and bootstraps the heuristic
artifact; ``cache`` keeps the served artifact and operator controls fresh on every replica.
"""
