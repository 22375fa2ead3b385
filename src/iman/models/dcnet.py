"""Placeholder until this method lands (filled by the architectures work)."""
