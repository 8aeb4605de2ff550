"""Template tags of the CDR admin."""
