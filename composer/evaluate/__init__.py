"""Measuring renders against their plans: tempo, key, chords, boundaries, repetition, seams
(`metrics`), and `composer evaluate` over render folders (`folders`)."""
