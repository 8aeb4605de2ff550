"""Django settings, split by environment: ``base`` plus ``dev``, ``prod`` and ``test``.

Every value comes from the typed :class:`tollguard.config.Settings` of the data
directory; nothing secret has a default.
"""
