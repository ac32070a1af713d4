"""Helpers shared by tests: real components started on loopback, and what they need."""
