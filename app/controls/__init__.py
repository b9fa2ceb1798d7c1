"""Operator controls shared by every replica: trading state and kill switches, and the
append-only history of every change (``changes`` holds the pure rules, ``service`` the one call
the admin API and the CLI make)."""
