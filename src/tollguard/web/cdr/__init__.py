"""CDR app: stored call detail records and their export."""
