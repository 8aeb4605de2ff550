"""tollguard.transport"""
