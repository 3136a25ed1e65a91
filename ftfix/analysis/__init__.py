"""What the rules share, built on io only.

Template rendering and probes, turn frames, stop chains, vocabularies, embedding-row statistics,
the Context rules read through, and edit builders.
"""
