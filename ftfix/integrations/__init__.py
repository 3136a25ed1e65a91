"""Integrations with training libraries (imported on demand; they pull in their library)."""
