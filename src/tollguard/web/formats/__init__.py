"""Date and time formats of the web app (``FORMAT_MODULE_PATH``), per language."""
