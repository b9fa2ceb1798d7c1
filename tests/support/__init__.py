"""Test support: real databases, a TCP fault proxy, request builders."""
