"""Operator controls shared by every replica: trading state and kill switches."""
