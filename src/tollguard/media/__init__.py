"""tollguard.media"""
