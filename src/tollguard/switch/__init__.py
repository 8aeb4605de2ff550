"""tollguard.switch"""
