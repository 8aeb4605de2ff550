"""tollguard.sip"""
